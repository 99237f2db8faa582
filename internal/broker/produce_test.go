package broker_test

// Produce against topics that change under it, on a real broker over a
// real socket.

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/broker"
)

// A topic created while a produce request is being served is looked up
// whole for each partition: a partition found after the creation is
// written with the new topic's settings, never with the settings of the
// topic missing when the request began (none, which crashed the broker).
// The test hook creates the topic between the request's two partitions.
func TestProduceToATopicCreatedMidRequestUsesItsSettings(t *testing.T) {
	b, addr := serveBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := dialBroker(t, addr)
	adm := dialBroker(t, addr)
	broker.SetBeforeProducePartition(b, func(topic string, partition int32) {
		if topic != "late" || partition != 1 {
			return
		}
		created, err := kadm.NewClient(adm).CreateTopic(ctx, 2, 1, nil, "late")
		if err != nil || created.Err != nil {
			t.Errorf("create topic mid-request: %v %v", err, created.Err)
		}
	})
	defer broker.SetBeforeProducePartition(b, nil)

	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = 1, 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "late"
	for i := range int32(2) {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = i
		rp.Records = batch.Build(batch.Spec{Timestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
			[]batch.Record{{Value: []byte("v")}})
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	parts := resp.Topics[0].Partitions
	if parts[0].ErrorCode == 0 {
		t.Errorf("partition 0, before the topic existed: no error")
	}
	if parts[1].ErrorCode != 0 || parts[1].BaseOffset != 0 {
		t.Errorf("partition 1, after the topic was created: error %d, base offset %d", parts[1].ErrorCode, parts[1].BaseOffset)
	}
}
