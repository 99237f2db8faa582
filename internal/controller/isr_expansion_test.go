package controller

import (
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
)

// ISR expansion (KIP-497): once the controller commits a follower into
// the ISR, a clean election may pick it, so from the moment the leader
// proposes it the leader's high watermark counts it (Kafka's maximal
// ISR), before the committed change comes back in the leader's image. An
// acks=all write made in that window is acknowledged only once the new
// member holds it, so the election that follows the leader's failure
// cannot lose it.
//
// The test drives the real pieces in that order: a leader partition
// (node 1, replicas 1 2 3, ISR 1 3), the caught-up follower 2, the
// leader's proposal (isr.go: ProposeISR, then AlterPartition), the
// controller's planISRChanges committing it, an acks=all write made
// before the leader applies the new ISR, and the controller's election
// when node 1 is fenced.
func TestAFollowerJoiningTheISRIsCountedBeforeItCanBeElected(t *testing.T) {
	f := newMembershipFixture(t)
	tid := metadata.NewTopicID()
	f.apply([]metadata.Record{{Topic: &metadata.TopicRecord{Name: "r", ID: tid}}, {Partition: &metadata.PartitionRecord{TopicID: tid, Index: 0, Leader: 1, LeaderEpoch: 4,
		Replicas: []int32{1, 2, 3}, ISR: []int32{1, 3}, PartitionEpoch: 1}}})

	cfg := wlog.DefaultConfig()
	cfg.FS = logtest.NewMemFS()
	cfg.Now = func() time.Time { return time.UnixMilli(1000) }
	L, err := partition.OpenWith("r", 0, "/l", cfg, 4, []int32{1, 3}, partition.Options{ManualFlush: true, ReplicaID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer L.Close()
	L.SetMinISR(2)
	write := func(v string) int64 {
		t.Helper()
		b := batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{{Value: []byte(v)}})
		h, err := batch.Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		base, _, err := L.Append(b, h, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := L.Sync(); err != nil {
			t.Fatal(err)
		}
		return base + 1
	}
	fetch := func(r int32, off int64) {
		t.Helper()
		if _, err := L.UpdateFollower(r, -1, off, L.LatestEpoch(), 1000); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	fetch(3, 1)
	fetch(2, 1) // follower 2 holds everything below the high watermark
	if L.HighWatermark() != 1 || !L.CaughtUp(2, 1000, 30000) {
		t.Fatalf("setup: high watermark %d, follower 2 caught up %v", L.HighWatermark(), L.CaughtUp(2, 1000, 30000))
	}
	// The leader proposes ISR 1 3 2 (isr.go) and the controller commits it.
	if !L.ProposeISR([]int32{1, 3, 2}, 1000, 30000) {
		t.Fatal("the proposal of caught-up follower 2 was refused")
	}
	recs, res := planISRChanges(f.im, 1, f.im.Brokers[1].Epoch, []ISRChange{{TopicID: tid, Partition: 0, LeaderEpoch: 4, PartitionEpoch: 1, NewISR: []int32{1, 3, 2}}})
	if res[0].Err != nil || len(recs) != 1 {
		t.Fatalf("ISR change refused: %v", res[0].Err)
	}
	f.apply(recs)
	// Before the leader's image has it: an acks=all write, fetched by 3.
	end := write("W")
	ack := L.WaitDurable(end)
	fetch(3, end)
	select {
	case err := <-ack:
		t.Fatalf("acks=all write W at offset %d was acknowledged (err %v) with follower 2 holding only offsets below 1, "+
			"while the controller's ISR already named 2 (%v)", end-1, err, recs[0].Partition.ISR)
	default:
	}
	fetch(2, end)
	select {
	case err := <-ack:
		if err != nil {
			t.Fatalf("write not acknowledged once every proposed ISR member held it: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("write not acknowledged once every proposed ISR member held it (high watermark %d, end %d)", L.HighWatermark(), end)
	}
	// Node 1 fails (session expiry); the controller elects from the ISR,
	// whose every member holds W.
	f.heartbeat(30*time.Second, 2, false)
	f.heartbeat(30*time.Second, 3, false)
	f.plan(30 * time.Second)
	if p := f.partition("r", 0); p.Leader != 2 && p.Leader != 3 {
		t.Fatalf("after node 1 failed the controller elected %+v, not an ISR member", p)
	}
}

// A refused proposal stops counting: the high watermark waits for the
// committed ISR alone again.
func TestARefusedISRProposalStopsHoldingTheHighWatermark(t *testing.T) {
	cfg := wlog.DefaultConfig()
	cfg.FS = logtest.NewMemFS()
	cfg.Now = func() time.Time { return time.UnixMilli(1000) }
	L, err := partition.OpenWith("r", 0, "/l", cfg, 4, []int32{1, 3}, partition.Options{ManualFlush: true, ReplicaID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer L.Close()
	b := batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{{Value: []byte("a")}})
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := L.Append(b, h, 1000); err != nil {
		t.Fatal(err)
	}
	if err := L.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := L.UpdateFollower(2, -1, 0, -1, 1000); err != nil {
		t.Fatal(err)
	}
	if !L.ProposeISR([]int32{1, 2, 3}, 1000, 30000) {
		t.Fatal("the proposal of caught-up follower 2 was refused")
	}
	if _, err := L.UpdateFollower(3, -1, 1, L.LatestEpoch(), 1000); err != nil {
		t.Fatal(err)
	}
	if hw := L.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d while proposed member 2 holds nothing", hw)
	}
	L.WithdrawISRProposal()
	if hw := L.HighWatermark(); hw != 1 {
		t.Fatalf("high watermark %d after the proposal was refused, want 1 (ISR 1 3 both hold offset 0)", hw)
	}
}
