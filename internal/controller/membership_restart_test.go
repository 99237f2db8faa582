package controller

import (
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/metadata"
)

// A broker that registers again (a new incarnation: it restarted, and
// may have lost the log tail it had not fsynced, which its followers may
// hold) does not lead a replicated partition on at the epoch it led
// before: the followers' KIP-320 divergence check compares epochs, and a
// leader that rewrote offsets it lost at the same epoch would never be
// seen to diverge.
func TestARestartedLeaderOfAReplicatedPartitionGetsANewEpoch(t *testing.T) {
	f := newMembershipFixture(t)
	f.heartbeat(20*time.Second, 2, false)
	f.heartbeat(20*time.Second, 3, false)
	f.heartbeat(20*time.Second, 1, false)
	before := f.partition("t", 3)
	f.apply([]metadata.Record{{Broker: &metadata.BrokerRecord{NodeID: 1, Incarnation: "b", Host: "h", Port: 9001}}})
	f.plan(21 * time.Second)
	// node 1 catches up and heartbeats: it is unfenced.
	f.heartbeat(22*time.Second, 1, false)
	f.heartbeat(22*time.Second, 2, false)
	f.heartbeat(22*time.Second, 3, false)
	f.plan(22 * time.Second)
	after := f.partition("t", 3)
	if after.Leader == before.Leader && after.LeaderEpoch == before.LeaderEpoch {
		t.Fatalf("replicated partition t-3 before node 1 restarted: %+v; after: %+v — the restarted leader leads on at the same epoch", before, after)
	}
}
