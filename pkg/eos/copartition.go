package eos

import (
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// copartitionBalancer assigns partition p of every input topic to the
// same member, as Kafka Streams assigns co-partitioned topics as one
// task: a stateful processor keeps one store per partition number, so
// two owners of one number would both write its store and its changelog
// partition. kgo's RangeBalancer gives the same result only while no
// member announces a rack, so the rule is written down here instead.
//
// It is an eager balancer: a member revokes everything before it joins,
// and each assignment is the member's whole set. The processor relies on
// that to know exactly which partitions it owns (see joining).
type copartitionBalancer struct {
	// joining runs each time the member sends its JoinGroup metadata:
	// from then until SyncGroup assigns, an eager member owns nothing.
	joining func()
}

var _ kgo.GroupBalancer = (*copartitionBalancer)(nil)

// copartitionProtocol is the balancer's protocol name in JoinGroup; any
// name works with the classic group protocol, so it runs on Apache Kafka.
const copartitionProtocol = "eos-copartitioned"

func (*copartitionBalancer) ProtocolName() string { return copartitionProtocol }
func (*copartitionBalancer) IsCooperative() bool  { return false }

func (c *copartitionBalancer) JoinGroupMetadata(interests []string, _ map[string][]int32, generation int32) []byte {
	if c.joining != nil {
		c.joining()
	}
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	return meta.AppendTo(nil)
}

func (*copartitionBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (c *copartitionBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	b, err := kgo.NewConsumerBalancer(c, members)
	return b, b.MemberTopics(), err
}

// Balance splits the partition numbers into contiguous ranges, one per
// member in member order, and gives each member its numbers in every
// topic it subscribes to. Run refuses input topics whose partition counts
// differ; should a member subscribe to a topic its range owner does not,
// the number goes to the first subscriber after it, still one owner per
// topic partition.
func (*copartitionBalancer) Balance(b *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	members := make([]*kmsg.JoinGroupResponseMember, 0, len(b.Members()))
	subscribed := map[string]map[string]bool{} // member id → topics
	b.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		members = append(members, m)
		ts := map[string]bool{}
		for _, t := range meta.Topics {
			ts[t] = true
		}
		subscribed[m.MemberID] = ts
	})
	// Static members (KIP-345) sort by instance id so that a restart
	// keeps their numbers; the rest by member id.
	sort.Slice(members, func(i, j int) bool {
		a, b := members[i], members[j]
		ai, bi := a.InstanceID != nil, b.InstanceID != nil
		switch {
		case ai && bi && *a.InstanceID != *b.InstanceID:
			return *a.InstanceID < *b.InstanceID
		case ai != bi:
			return ai
		}
		return a.MemberID < b.MemberID
	})
	plan := b.NewPlan()
	if len(members) == 0 {
		return plan
	}
	var n int32
	names := make([]string, 0, len(topics))
	for t, parts := range topics {
		n = max(n, parts)
		names = append(names, t)
	}
	slices.Sort(names)
	div, rem := int(n)/len(members), int(n)%len(members)
	owner := make([]int, n) // partition number → index in members
	for i, p := 0, 0; i < len(members); i++ {
		size := div
		if i < rem {
			size++
		}
		for ; size > 0; size-- {
			owner[p] = i
			p++
		}
	}
	for _, t := range names {
		for p := range topics[t] {
			for k := range members {
				m := members[(owner[p]+k)%len(members)]
				if subscribed[m.MemberID][t] {
					plan.AddPartition(m, t, p)
					break
				}
			}
		}
	}
	return plan
}
