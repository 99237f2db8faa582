package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/metadata"
)

// A broker that registers again (a new incarnation) may have come back
// without its log (a replaced disk) or without the tail it had not
// fsynced, so it leaves every ISR it was in, as a broker whose session
// expired does, and rejoins only through the leader's expansion once it
// has caught up. It stays only where it is the last member, which an
// ISR never loses (KIP-966). Each case starts from partition r-0:
// replicas 1 2 3, led by 1, ISR all three unless it says, as the acks=all
// writes left it; every broker heartbeats at 20 s, and at the end every
// broker has caught up and heartbeats again.
func TestABrokerThatRegistersAgainLeavesEveryISRItWasIn(t *testing.T) {
	const at = 20 * time.Second
	reregister := func(f *membershipFixture, id int32) {
		f.apply([]metadata.Record{{Broker: &metadata.BrokerRecord{NodeID: id, Incarnation: "b", Host: "h", Port: 9000 + id}}})
	}
	caughtUp := func(f *membershipFixture, at time.Duration, id int32) {
		f.live.heard(f.t0.Add(at), id, f.im.Brokers[id].Epoch, f.im.Offset, false, false)
	}
	for _, c := range []struct {
		name string
		// isr is the starting ISR of r-0 (nil: 1 2 3).
		isr []int32
		// steps act after the heartbeats at 20 s; the fixture plans
		// after them at 21 s.
		steps      func(f *membershipFixture)
		wantLeader int32
		wantISR    []int32
		// newEpoch: the leader epoch must have moved.
		newEpoch bool
	}{{
		name:       "a follower registers again: it leaves, the leader leads on",
		steps:      func(f *membershipFixture) { reregister(f, 2) },
		wantLeader: 1, wantISR: []int32{1, 3},
	}, {
		name: "a follower registers again and has caught up before the controller plans: it still leaves",
		steps: func(f *membershipFixture) {
			reregister(f, 2)
			caughtUp(f, 21*time.Second, 2)
		},
		wantLeader: 1, wantISR: []int32{1, 3},
	}, {
		name:       "the leader registers again: a member that holds the data leads",
		steps:      func(f *membershipFixture) { reregister(f, 1) },
		wantLeader: 2, wantISR: []int32{2, 3}, newEpoch: true,
	}, {
		name: "a follower came back empty and then the leader died: the other member leads, not the empty one",
		steps: func(f *membershipFixture) {
			reregister(f, 2)
			f.plan(at + time.Second)
			caughtUp(f, at+testSession, 2)
			f.heartbeat(at+testSession, 3, false)
			f.plan(at + testSession) // node 1's session expires
		},
		wantLeader: 3, wantISR: []int32{3}, newEpoch: true,
	}, {
		name: "a follower registers again as the leader's session expires: the old leader stays the last member, and leads when it returns",
		isr:  []int32{1, 2},
		steps: func(f *membershipFixture) {
			reregister(f, 2)
			caughtUp(f, at+testSession, 2)
			f.heartbeat(at+testSession, 3, false)
			f.plan(at + testSession)
		},
		wantLeader: 1, wantISR: []int32{1}, newEpoch: true,
	}, {
		name:       "the last ISR member registers again: it stays, and leads on",
		isr:        []int32{2},
		steps:      func(f *membershipFixture) { reregister(f, 2) },
		wantLeader: 2, wantISR: []int32{2},
	}, {
		name: "a follower's session expires: it leaves the same way",
		steps: func(f *membershipFixture) {
			f.heartbeat(at+testSession, 1, false)
			f.heartbeat(at+testSession, 3, false)
			f.plan(at + testSession)
		},
		wantLeader: 1, wantISR: []int32{1, 3},
	}} {
		t.Run(c.name, func(t *testing.T) {
			f := newMembershipFixture(t)
			tid := metadata.NewTopicID()
			isr := c.isr
			if isr == nil {
				isr = []int32{1, 2, 3}
			}
			leader := int32(1)
			if !slices.Contains(isr, leader) {
				leader = isr[0]
			}
			f.apply([]metadata.Record{{Topic: &metadata.TopicRecord{Name: "r", ID: tid}}, {Partition: &metadata.PartitionRecord{
				TopicID: tid, Index: 0, Leader: leader, LeaderEpoch: 7, Replicas: []int32{1, 2, 3}, ISR: isr, PartitionEpoch: 3}}})
			for id := int32(1); id <= 3; id++ {
				f.heartbeat(at, id, false)
			}
			before := f.partition("r", 0)
			c.steps(f)
			f.plan(at + testSession + time.Second)
			for id := int32(1); id <= 3; id++ {
				caughtUp(f, at+testSession+time.Second, id)
			}
			f.plan(at + testSession + time.Second) // unfences whoever caught up
			p := f.partition("r", 0)
			if p.Leader != c.wantLeader || !slices.Equal(p.ISR, c.wantISR) {
				t.Fatalf("r-0 from %+v: %+v; want leader %d, ISR %v", before, p, c.wantLeader, c.wantISR)
			}
			if c.newEpoch && p.LeaderEpoch <= before.LeaderEpoch {
				t.Fatalf("r-0 from %+v: %+v; want a new leader epoch", before, p)
			}
			if p.PartitionEpoch <= before.PartitionEpoch {
				t.Fatalf("r-0 from %+v: %+v; an ISR change must bring a new partition epoch", before, p)
			}
		})
	}
}
