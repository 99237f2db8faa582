package group

// ConsumerGroupDescribe v0-1 (KIP-848): the consumer protocol's
// DescribeGroups. A group that does not exist, or is a classic group, is
// GROUP_ID_NOT_FOUND. Members show their current assignment (what they
// may use now) and their target; v1 adds the member type, always the
// consumer protocol here (1). Authorized operations are not computed
// (there is no authorizer): the field keeps its "not asked" value.

import (
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumerMemberType is ConsumerGroupDescribe's member type of a member
// that uses the consumer protocol.
const consumerMemberType = 1

func (s *Shard) consumerGroupDescribe(in Input, req *kmsg.ConsumerGroupDescribeRequest) {
	if in.Topics != nil {
		s.topics = in.Topics
	}
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewConsumerGroupDescribeResponseGroup()
		dg.Group = id
		g := s.groups[id]
		switch {
		case id == "":
			dg.ErrorCode = kerr.InvalidGroupID.Code
		case g == nil || g.cg == nil || g.state == Dead:
			dg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "group " + id + " is not a consumer group"
			dg.ErrorMessage = &msg
		default:
			cg := g.cg
			dg.State, dg.Epoch, dg.AssignmentEpoch, dg.AssignorName = cg.stateName(), cg.epoch, cg.assignmentEpoch, cg.assignor
			if dg.AssignorName == "" {
				dg.AssignorName = s.cfg.ConsumerAssignors[0]
			}
			for _, mid := range cg.memberIDs() {
				m := cg.members[mid]
				dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
				dm.MemberID, dm.MemberEpoch, dm.ClientID, dm.ClientHost = m.id, m.epoch, m.clientID, m.clientHost
				if m.instanceID != "" {
					dm.InstanceID = &m.instanceID
				}
				if m.rackID != "" {
					dm.RackID = &m.rackID
				}
				dm.SubscribedTopics = slices.Clone(m.subscribedNames)
				if dm.SubscribedTopics == nil {
					dm.SubscribedTopics = []string{}
				}
				if m.regex != "" {
					dm.SubscribedTopicRegex = &m.regex
				}
				dm.Assignment = s.describeAssignment(m.assigned)
				dm.TargetAssignment = s.describeAssignment(cg.target[mid])
				dm.MemberType = consumerMemberType
				dg.Members = append(dg.Members, dm)
			}
		}
		resp.Groups = append(resp.Groups, dg)
	}
	s.respond(in.Token, resp)
}

func (s *Shard) describeAssignment(a assignment) kmsg.Assignment {
	out := kmsg.NewAssignment()
	out.TopicPartitions = []kmsg.AssignmentTopicPartition{}
	for _, name := range slices.Sorted(maps.Keys(a)) {
		t, ok := s.topics[name]
		if !ok || len(a[name]) == 0 {
			continue
		}
		tp := kmsg.NewAssignmentTopicPartition()
		tp.TopicID, tp.Topic, tp.Partitions = t.ID, name, slices.Clone(a[name])
		out.TopicPartitions = append(out.TopicPartitions, tp)
	}
	return out
}
