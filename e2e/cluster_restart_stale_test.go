package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A restarted node leads nothing until the metadata holds its new
// registration. The leaderships its image names on disk are its previous
// process's, which may have lost a tail it had not fsynced: leading at
// that process's epochs, it would take new writes at offsets a follower
// holds different records at, and the follower would never see the logs
// diverge. Here the node restarts while the metadata quorum has no
// majority, so its registration cannot commit: it must answer writes to
// the partitions its image says it led NOT_LEADER_OR_FOLLOWER, not take
// them. Once the others return, it leads them again at new epochs.
func TestClusterRestartedNodeLeadsNothingBeforeItsRegistration(t *testing.T) {
	tc := startCluster(t, 3)
	ctrl := tc.waitController(15 * time.Second)
	victim := (ctrl + 1) % 3
	victimID := int32(victim + 1)
	const topic, parts = "stale-image", 6
	if code := tc.createPartitioned(ctrl, topic, parts, 1); code != 0 {
		t.Fatalf("create %q: %v", topic, kerr.ErrorForCode(code))
	}
	var owned map[int32]int32
	poll(t, 10*time.Second, func() string {
		_, mt := tc.topicMetadata(victim, topic)
		if mt == nil || len(mt.Partitions) != parts {
			return "topic not in the victim's Metadata"
		}
		if owned = ledBy(mt, victimID); len(owned) == 0 {
			return fmt.Sprintf("node %d leads no partition of %s", victimID, topic)
		}
		return ""
	})
	for i := range tc.c.Nodes {
		tc.c.Kill(i)
	}
	if err := tc.c.Start(victim); err != nil {
		t.Fatal(err)
	}
	for p := range owned {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = 1, 2000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p, goodBatch()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := tc.request(victim, req, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code == 0 {
			t.Fatalf("node %d, restarted without a quorum to register with, took a write to %s-%d at its previous process's epoch %d",
				victimID, topic, p, owned[p])
		}
	}
	for i := range tc.c.Nodes {
		if i != victim {
			if err := tc.c.Start(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	tc.waitController(30 * time.Second)
	poll(t, 15*time.Second, func() string {
		_, mt := tc.topicMetadata(victim, topic)
		if mt == nil {
			return "no Metadata"
		}
		led := ledBy(mt, victimID)
		for p, epoch := range owned {
			if led[p] <= epoch {
				return fmt.Sprintf("node %d leads %v; want %v at newer epochs", victimID, led, owned)
			}
		}
		return ""
	})
	cl := newClient(t, tc.c.Nodes[victim].Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for p := range owned {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("after")}).FirstErr(); err != nil {
			t.Fatalf("produce to %s-%d once node %d registered: %v", topic, p, victimID, err)
		}
	}
}
