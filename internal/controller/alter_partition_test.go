package controller

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// An ISR change is applied only when it comes from the current leader at
// the current leader epoch and partition epoch, and names live replicas;
// each accepted change makes the next partition epoch, so a second
// change planned on the state the first replaced is refused.
func TestAlterPartitionAppliesOnlyTheLeadersChangeToTheCurrentState(t *testing.T) {
	f := newMembershipFixture(t)
	tid := f.im.Topics["t"].ID
	p3 := f.partition("t", 3) // leader 1, epoch 4, replicas and ISR [1 2]
	epoch1 := f.im.Brokers[1].Epoch
	change := func(broker int32, brokerEpoch int64, leaderEpoch, partitionEpoch int32, isr ...int32) ISRResult {
		t.Helper()
		recs, res := planISRChanges(f.im, broker, brokerEpoch, []ISRChange{{TopicID: tid, Partition: 3, LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch, NewISR: isr}})
		if len(recs) > 0 {
			f.apply(recs)
		}
		return res[0]
	}
	for _, tt := range []struct {
		name string
		res  ISRResult
		want *kerr.Error
	}{
		{"a stale broker epoch", change(1, epoch1-1, p3.LeaderEpoch, p3.PartitionEpoch, 1), kerr.StaleBrokerEpoch},
		{"an older leader epoch", change(1, epoch1, p3.LeaderEpoch-1, p3.PartitionEpoch, 1), kerr.FencedLeaderEpoch},
		{"a follower", change(2, f.im.Brokers[2].Epoch, p3.LeaderEpoch, p3.PartitionEpoch, 2), kerr.NotLeaderForPartition},
		{"a newer partition epoch", change(1, epoch1, p3.LeaderEpoch, p3.PartitionEpoch+1, 1), kerr.InvalidUpdateVersion},
		{"an ISR without the leader", change(1, epoch1, p3.LeaderEpoch, p3.PartitionEpoch, 2), kerr.InvalidRequest},
		{"a broker that is not a replica", change(1, epoch1, p3.LeaderEpoch, p3.PartitionEpoch, 1, 3), kerr.IneligibleReplica},
	} {
		if tt.res.Err != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.res.Err, tt.want)
		}
	}
	if got := f.partition("t", 3); !slices.Equal(got.ISR, []int32{1, 2}) || got.PartitionEpoch != p3.PartitionEpoch {
		t.Fatalf("refused changes changed the partition: %+v", got)
	}

	// The leader shrinks the ISR: accepted, next partition epoch.
	res := change(1, epoch1, p3.LeaderEpoch, p3.PartitionEpoch, 1)
	if res.Err != nil || !slices.Equal(res.Partition.ISR, []int32{1}) || res.Partition.PartitionEpoch != p3.PartitionEpoch+1 {
		t.Fatalf("shrink to [1]: %+v", res)
	}
	if got := f.partition("t", 3); !slices.Equal(got.ISR, []int32{1}) || got.PartitionEpoch != p3.PartitionEpoch+1 || got.LeaderEpoch != p3.LeaderEpoch {
		t.Fatalf("after the shrink: %+v", got)
	}
	// A second change on the old partition epoch is refused.
	if res := change(1, epoch1, p3.LeaderEpoch, p3.PartitionEpoch, 1, 2); res.Err != kerr.InvalidUpdateVersion {
		t.Fatalf("change on the replaced state: %v, want INVALID_UPDATE_VERSION", res.Err)
	}
	// A fenced replica cannot join the ISR.
	f.apply([]metadata.Record{{BrokerChange: &metadata.BrokerChangeRecord{NodeID: 2, Epoch: f.im.Brokers[2].Epoch, Fenced: true}}})
	if res := change(1, epoch1, p3.LeaderEpoch, p3.PartitionEpoch+1, 1, 2); res.Err != kerr.IneligibleReplica {
		t.Fatalf("fenced broker 2 joining: %v, want INELIGIBLE_REPLICA", res.Err)
	}
	f.apply([]metadata.Record{{BrokerChange: &metadata.BrokerChangeRecord{NodeID: 2, Epoch: f.im.Brokers[2].Epoch}}})
	// KIP-903: nor can one named with a broker epoch other than its
	// registration's (the leader saw the fetches of another incarnation).
	_, stale := planISRChanges(f.im, 1, epoch1, []ISRChange{{TopicID: tid, Partition: 3, LeaderEpoch: p3.LeaderEpoch,
		PartitionEpoch: p3.PartitionEpoch + 1, NewISR: []int32{1, 2}, NewISRBrokerEpochs: []int64{epoch1, f.im.Brokers[2].Epoch + 1}}})
	if stale[0].Err != kerr.IneligibleReplica {
		t.Fatalf("broker 2 joining with another incarnation's broker epoch: %v, want INELIGIBLE_REPLICA", stale[0].Err)
	}
	if res := change(1, epoch1, p3.LeaderEpoch, p3.PartitionEpoch+1, 2, 1); res.Err != nil || !slices.Equal(res.Partition.ISR, []int32{1, 2}) {
		t.Fatalf("broker 2 rejoining: %+v", res)
	}
}
