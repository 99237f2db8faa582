package group

// DescribeGroups v0-6, ListGroups v0-5, DeleteGroups v0-2.
//
// DescribeGroups: a group that does not exist is reported as Dead, and
// from v6 with GROUP_ID_NOT_FOUND. Members' subscriptions and assignments
// are shown only for a Stable group, as in Kafka. v4+ shows
// group.instance.id. ListGroups: v4+ filters by state (case-insensitive),
// v5+ by type: "classic", or "consumer" for a consumer group (KIP-848). DeleteGroups
// deletes only empty groups: their offsets and membership are tombstoned
// and the answer waits until that is durable.

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Group types as ListGroups v5+ reports them.
const (
	groupType         = "classic"
	consumerGroupType = "consumer"
)

func (s *Shard) describeGroups(in Input, req *kmsg.DescribeGroupsRequest) {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = id
		g := s.groups[id]
		if g == nil || g.state == Dead || g.cg != nil {
			// A consumer group (KIP-848) is described by
			// ConsumerGroupDescribe; here it is not found, as in Kafka.
			dg.State = Dead.String()
			if req.Version >= 6 {
				dg.ErrorCode = kerr.GroupIDNotFound.Code
				msg := "group " + id + " does not exist"
				dg.ErrorMessage = &msg
			}
			resp.Groups = append(resp.Groups, dg)
			continue
		}
		dg.State, dg.ProtocolType = g.state.String(), g.protocolType
		stable := g.state == Stable
		if stable {
			dg.Protocol = g.protocol
		}
		g.each(func(m *member) {
			dm := kmsg.NewDescribeGroupsResponseGroupMember()
			dm.MemberID, dm.ClientID, dm.ClientHost = m.id, m.clientID, m.clientHost
			if m.instanceID != "" {
				inst := m.instanceID
				dm.InstanceID = &inst
			}
			if stable {
				dm.ProtocolMetadata = m.metadataFor(g.protocol)
				dm.MemberAssignment = m.assignment
			}
			dg.Members = append(dg.Members, dm)
		})
		resp.Groups = append(resp.Groups, dg)
	}
	s.respond(in.Token, resp)
}

func (s *Shard) listGroups(in Input, req *kmsg.ListGroupsRequest) {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	for _, id := range s.groupIDs() {
		g := s.groups[id]
		typ, protocolType, state := groupType, g.protocolType, g.state.String()
		if g.cg != nil {
			typ, protocolType, state = consumerGroupType, consumerGroupType, g.cg.stateName()
		}
		if g.state == Dead || !matchesAny(req.StatesFilter, state) || !matchesAny(req.TypesFilter, typ) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = id, protocolType, state, typ
		resp.Groups = append(resp.Groups, lg)
	}
	s.respond(in.Token, resp)
}

// matchesAny reports whether v is in filter, ignoring case; an empty
// filter matches everything.
func matchesAny(filter []string, v string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if strings.EqualFold(f, v) {
			return true
		}
	}
	return false
}

func (s *Shard) deleteGroups(in Input, req *kmsg.DeleteGroupsRequest) {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	var recs []Record
	var deleting []*group
	var results []*kmsg.DeleteGroupsResponseGroup
	for _, id := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = id
		g := s.groups[id]
		switch {
		case id == "":
			dg.ErrorCode = kerr.InvalidGroupID.Code
		case g == nil || g.state == Dead:
			dg.ErrorCode = kerr.GroupIDNotFound.Code
		case g.state != Empty || g.hasMembers():
			dg.ErrorCode = kerr.NonEmptyGroup.Code
		default:
			// Tombstones for the pending transactional offsets too, so that
			// neither a marker nor a replay after compaction brings them
			// back.
			tps := map[topicPartition]bool{}
			for tp := range g.offsets {
				tps[tp] = true
			}
			for _, pending := range g.txnOffsets {
				for tp := range pending {
					tps[tp] = true
				}
			}
			for tp := range tps {
				recs = append(recs, Record{Key: offsetKey(id, tp)})
				s.nextSeq()
			}
			if g.cg != nil {
				recs = append(recs, Record{Key: consumerGroupKey(id)})
			}
			recs = append(recs, Record{Key: groupKey(id)})
			g.state = Dead // refuses commits and joins until it is gone
			deleting = append(deleting, g)
		}
		resp.Groups = append(resp.Groups, dg)
	}
	for i := range resp.Groups {
		results = append(results, &resp.Groups[i])
	}
	if len(recs) == 0 {
		s.respond(in.Token, resp)
		return
	}
	s.append(recs, func(_ int64, err error) {
		for _, g := range deleting {
			if err != nil {
				g.state = Empty
				for _, r := range results {
					if r.Group == g.id {
						r.ErrorCode = kerr.CoordinatorNotAvailable.Code
					}
				}
				continue
			}
			if s.groups[g.id] == g {
				delete(s.groups, g.id)
			}
		}
		s.respond(in.Token, resp)
	})
}
