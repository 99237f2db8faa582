package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A leader stopped with SIGTERM hands its partitions over (controlled
// shutdown) and then tells the clients that keep writing to it where the
// partition went — NOT_LEADER_OR_FOLLOWER with the new leader (KIP-951) —
// for a while before its listener stops, so they move at once instead of finding a
// closed connection and waiting for their next metadata refresh.
func TestClusterLeaderStoppingTellsWritersTheNewLeader(t *testing.T) {
	tc := startCluster(t, 3)
	ctrl := tc.waitController(15 * time.Second)
	const topic = "handover"
	tc.createReplicated(ctrl, topic, 1, 3, 2)
	var st kmsg.MetadataResponseTopicPartition
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		st, ok = tc.partitionState(ctrl, topic, 0)
		if ok && st.Leader > 0 && len(st.ISR) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s-0 has no full ISR: %+v", topic, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	leader := int(st.Leader - 1)
	// One connection to the leader alone, never retried elsewhere.
	cl := newClient(t, tc.c.Nodes[leader].Addr, kgo.RequestRetries(0))
	br := cl.Broker(int(st.Leader))
	produce := func() (*kmsg.ProduceResponse, error) {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = goodBatch()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := br.RetriableRequest(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.(*kmsg.ProduceResponse), nil
	}
	if _, err := produce(); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tc.c.Terminate(leader)
	}()
	// Answers to writes sent after the partition moved, not only to
	// those that were waiting for their acknowledgement when it did.
	var told *kmsg.ProduceResponseTopicPartition
	answered := 0
	for answered < 2 {
		resp, err := produce()
		if err != nil {
			break // the listener stopped
		}
		p := resp.Topics[0].Partitions[0]
		if kerr.ErrorForCode(p.ErrorCode) == kerr.NotLeaderForPartition {
			told = &p
			answered++
		}
	}
	<-stopped
	if answered < 2 {
		t.Fatalf("node %d answered %d writes with NOT_LEADER_OR_FOLLOWER before it stopped; want the writes sent after %s-0 moved answered too", leader+1, answered, topic)
	}
	if told.CurrentLeader.LeaderID < 1 || told.CurrentLeader.LeaderID == st.Leader || told.CurrentLeader.LeaderEpoch <= st.LeaderEpoch {
		t.Fatalf("NOT_LEADER_OR_FOLLOWER from the stopping leader names leader %d at epoch %d; want another node at an epoch above %d",
			told.CurrentLeader.LeaderID, told.CurrentLeader.LeaderEpoch, st.LeaderEpoch)
	}
}
