package e2e

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetForLeaderEpoch (KIP-320) on one node: the only epoch, 0, ends at
// the log end; a newer epoch is unknown to the log (-1, -1); a current
// leader epoch newer than the partition's is UNKNOWN_LEADER_EPOCH; an
// unknown partition is UNKNOWN_TOPIC_OR_PARTITION. A consumer that checks
// its position with it carries on reading.
func TestOffsetForLeaderEpochNamesWhereEachEpochEnds(t *testing.T) {
	b, _ := startBroker(t, nil)
	addr := b.Addr()
	adm := newAdmin(t, addr)
	createTopic(t, adm, "epochs", 1, nil)
	ctx := testCtx(t)
	cl := newClient(t, addr, kgo.DefaultProduceTopic("epochs"))
	for range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(topic string, partition, current, epoch int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = -1
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = partition, current, epoch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := cl.SeedBrokers()[0].Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	}
	if got := ask("epochs", 0, 0, 0); got.ErrorCode != 0 || got.LeaderEpoch != 0 || got.EndOffset != 5 {
		t.Fatalf("epoch 0: %+v; want epoch 0 ending at the log end, 5", got)
	}
	if got := ask("epochs", 0, -1, 3); got.ErrorCode != 0 || got.LeaderEpoch != -1 || got.EndOffset != -1 {
		t.Fatalf("epoch 3: %+v; want -1, -1", got)
	}
	if got := ask("epochs", 0, 7, 0); kerr.ErrorForCode(got.ErrorCode) != kerr.UnknownLeaderEpoch {
		t.Fatalf("current leader epoch 7: %+v; want UNKNOWN_LEADER_EPOCH", got)
	}
	if got := ask("nope", 0, -1, 0); kerr.ErrorForCode(got.ErrorCode) != kerr.UnknownTopicOrPartition {
		t.Fatalf("unknown topic: %+v; want UNKNOWN_TOPIC_OR_PARTITION", got)
	}
	recs := consumeAll(t, addr, "epochs", 5)
	if len(recs) != 5 {
		t.Fatalf("read %d records, want 5", len(recs))
	}
}
