package eos

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The co-partitioning balancer gives partition p of every input topic to
// one member, every topic partition to exactly one member, and each
// member a share of partition numbers within one of the others'.
func TestBalancerAssignsPartitionPOfEveryTopicToOneMember(t *testing.T) {
	for _, c := range []struct{ members, partitions int }{{1, 3}, {2, 1}, {3, 7}, {4, 4}, {5, 2}} {
		t.Run(fmt.Sprintf("%d members %d partitions", c.members, c.partitions), func(t *testing.T) {
			bal := &copartitionBalancer{}
			var members []kmsg.JoinGroupResponseMember
			for i := range c.members {
				m := kmsg.NewJoinGroupResponseMember()
				m.MemberID = fmt.Sprintf("member-%d", i)
				m.ProtocolMetadata = bal.JoinGroupMetadata([]string{"orders", "restocks"}, nil, 1)
				members = append(members, m)
			}
			mb, _, err := bal.MemberBalancer(members)
			if err != nil {
				t.Fatal(err)
			}
			n := int32(c.partitions)
			plan, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(map[string]int32{"orders": n, "restocks": n})
			if err != nil {
				t.Fatal(err)
			}
			owner := map[string]map[int32]string{"orders": {}, "restocks": {}}
			numbers := map[string]int{}
			for _, a := range plan.IntoSyncAssignment() {
				got, err := bal.ParseSyncAssignment(a.MemberAssignment)
				if err != nil {
					t.Fatal(err)
				}
				for topic, parts := range got {
					for _, p := range parts {
						if prev, ok := owner[topic][p]; ok {
							t.Errorf("%s/%d owned by %s and %s", topic, p, prev, a.MemberID)
						}
						owner[topic][p] = a.MemberID
						if topic == "orders" {
							numbers[a.MemberID]++
						}
					}
				}
			}
			for p := range n {
				o, r := owner["orders"][p], owner["restocks"][p]
				if o == "" || o != r {
					t.Errorf("partition %d: orders owned by %q, restocks by %q", p, o, r)
				}
			}
			lo, hi := c.partitions, 0
			for _, m := range members {
				lo, hi = min(lo, numbers[m.MemberID]), max(hi, numbers[m.MemberID])
			}
			if hi-lo > 1 {
				t.Errorf("shares of partition numbers from %d to %d", lo, hi)
			}
		})
	}
}

// Input topics with different partition counts cannot be co-partitioned:
// a stateful processor refuses them at start, naming the counts, rather
// than run stores that two owners would share.
func TestInputsWithDifferentPartitionCountsAreRefused(t *testing.T) {
	r := newRig(t, 2)
	if _, err := r.adm.CreateTopic(r.ctx, 3, 1, nil, "in3"); err != nil {
		t.Fatal(err)
	}
	p, err := NewStateful(Config{Brokers: []string{r.addr}, TransactionalID: "a", Group: "counter",
		InputTopics: []string{"in", "in3"}, OutputTopic: "out", Store: "counts", StateDir: t.TempDir()}, Count())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Run(r.ctx)
	if err == nil || !strings.Contains(err.Error(), "same partition count") || !strings.Contains(err.Error(), "in3 has 3") {
		t.Fatalf("Run over inputs of 2 and 3 partitions: %v, want a refusal naming the counts", err)
	}
}
