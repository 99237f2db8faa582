package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
)

// A zombie leader: the leader of a partition is frozen with SIGSTOP for
// longer than the broker session timeout, so the controller fences it and
// elects another replica; then it runs again, still believing it leads.
// A write sent to it in that window is not acknowledged at acks=all (its
// followers now fetch from the new leader, so its high watermark cannot
// pass the write), what it appended is truncated away when it learns it
// is a follower, every replica ends with the same batches at the same
// offsets, and the idempotent producer running throughout loses and
// doubles nothing.

// zombieValue marks the write sent to the deposed leader, so the test can
// look for it in every replica's log.
const zombieValue = "zombie-write"

// leaderNotController returns a partition of topic (of parts) whose
// leader is not node ctrl, the active controller, when there is one, so
// freezing the leader does not also stall the metadata quorum; and its
// state.
func (tc *testCluster) leaderNotController(ctrl int, topic string, parts int32) (int32, kmsg.MetadataResponseTopicPartition) {
	tc.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var first kmsg.MetadataResponseTopicPartition
		led := 0
		for p := range parts {
			st, ok := tc.partitionState(ctrl, topic, p)
			if !ok || st.Leader < 1 {
				continue
			}
			led++
			if int(st.Leader-1) != ctrl {
				return p, st
			}
			first = st
		}
		if led == int(parts) {
			return first.Partition, first
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("%s: %d of %d partitions have a leader", topic, led, parts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestClusterFrozenLeaderAcknowledgesNothingOnceReplacedAndIsTruncated(t *testing.T) {
	tc := startCluster(t, 3, "--set", "broker.session.timeout.ms=2000",
		"--set", "broker.heartbeat.interval.ms=300", "--set", "replica.lag.time.max.ms=3000")
	ctrl := tc.waitController(15 * time.Second)
	const topic = "zombie"
	tc.createReplicated(ctrl, topic, 3, 3, 2)
	p, st := tc.leaderNotController(ctrl, topic, 3)
	victim := int(st.Leader - 1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sp := tc.startSteadyProducer(ctx, topic, p, 45*time.Second)
	sp.waitAcked(200, 20*time.Second)

	t.Logf("freezing the leader of %s-%d, node %d (epoch %d), %d records acknowledged", topic, p, victim+1, st.LeaderEpoch, sp.ackedCount())
	if err := tc.c.Pause(victim); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = tc.c.Resume(victim) // so the cleanup's SIGKILL is not held up
		}
	}()
	leader := tc.waitLeaderElsewhere(topic, p, victim, st.LeaderEpoch, 30*time.Second)
	sp.waitAcked(100, 30*time.Second) // the new leader takes writes
	t.Logf("node %d leads now; %d records acknowledged", leader+1, sp.ackedCount())

	// A write to the frozen leader waits in its socket and is the first
	// thing it reads when it runs again, before it can hear of the new
	// leader.
	type answer struct {
		resp kmsg.Response
		err  error
	}
	zombie := make(chan answer, 1)
	go func() {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p
		rp.Records = batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Timestamp: time.Now().UnixMilli()},
			[]batch.Record{{Value: []byte(zombieValue)}})
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := tc.request(victim, req, 20*time.Second)
		zombie <- answer{resp, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := tc.c.Resume(victim); err != nil {
		t.Fatal(err)
	}
	resumed = true
	a := <-zombie
	switch {
	case a.err != nil:
		t.Logf("the deposed leader did not answer the write: %v", a.err)
	default:
		code := a.resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
		if code == 0 {
			t.Fatalf("the deposed leader, node %d, acknowledged an acks=all write after node %d replaced it", victim+1, leader+1)
		}
		t.Logf("the deposed leader refused the write: %v", kerr.ErrorForCode(code))
	}

	// It rejoins as a follower, and the partition keeps taking writes.
	tc.waitFullISR(leader, topic, p, 30*time.Second)
	sp.waitAcked(100, 20*time.Second)
	acked := sp.stop()
	checkAckedReadOnceInOrder(t, tc.c.Nodes[leader].Addr, topic, p, acked)
	tc.waitIdenticalLogs(topic, p, 30*time.Second)
	for i, nd := range tc.c.Nodes {
		batches, err := replicaLog(nd, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			if bytes.Contains(b.raw, []byte(zombieValue)) {
				t.Fatalf("node %d still holds the write the deposed leader took, at offset %d", i+1, b.base)
			}
		}
	}
}
