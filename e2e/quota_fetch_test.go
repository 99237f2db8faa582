package e2e

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A consumer over its consumer_byte_rate is held to it: as Kafka does, a
// fetch is never answered with more than the quota lets through in its
// window (the fetch's max bytes capped at the quota times the window),
// and a fetch that would put the client over its quota is answered
// empty, with the throttle. A consumer with a 2000 B/s quota reading a
// backlog of 1 MB for 4 s so gets tens of kilobytes, not the backlog.
func TestConsumerOverItsQuotaReceivesNoMoreThanItsQuotaWindow(t *testing.T) {
	b, _ := startBroker(t, nil)
	addr := b.Addr()
	adm := newAdmin(t, addr)
	ctx := testCtx(t)
	createTopic(t, adm, "backlog", 1, nil)
	const limit = 2000 // bytes per second
	reader := "reader"
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &reader}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: limit}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("AlterClientQuotas: %v %s", r.Err, r.ErrMessage)
		}
	}
	value := make([]byte, 4000)
	rand.Read(value)
	producer := newClient(t, addr, kgo.DefaultProduceTopic("backlog"), kgo.ProducerBatchMaxBytes(16<<10),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	var recs []*kgo.Record
	for i := 0; i < 256; i++ {
		recs = append(recs, &kgo.Record{Value: value})
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	consumer := newClient(t, addr, kgo.ClientID(reader), kgo.ConsumeTopics("backlog"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got int
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		fs := consumer.PollFetches(pctx)
		cancel()
		for _, r := range fs.Records() {
			got += len(r.Value)
		}
	}
	// Kafka's bound: the quota over its window (11 samples of 1 s) plus
	// one whole batch (KIP-74), with room to spare.
	const bound = 100_000
	t.Logf("a consumer with a quota of %d B/s read %d bytes in 4 s", limit, got)
	if got > bound {
		t.Fatalf("a consumer with a quota of %d B/s read %d bytes in 4 s, over %d: the quota did not hold it", limit, got, bound)
	}
}

// A consumer's quota is its client id's, however many connections it
// opens: once it is over its consumer_byte_rate, Kafka answers every
// fetch of that client id empty until its rate has fallen back, so
// reconnecting does not read more. Here a client id with a quota of
// 2000 B/s fetches 64 KiB at a time for 4 s, each fetch on a new
// connection.
func TestConsumerOverItsQuotaGetsNoDataOnANewConnection(t *testing.T) {
	b, _ := startBroker(t, nil)
	addr := b.Addr()
	adm := newAdmin(t, addr)
	ctx := testCtx(t)
	createTopic(t, adm, "backlog", 1, nil)
	const limit = 2000
	reader := "reader"
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &reader}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: limit}},
	}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("AlterClientQuotas: %v %+v", err, res)
	}
	value := make([]byte, 4000)
	rand.Read(value)
	producer := newClient(t, addr, kgo.DefaultProduceTopic("backlog"), kgo.ProducerBatchMaxBytes(16<<10),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	var recs []*kgo.Record
	for i := 0; i < 1024; i++ {
		recs = append(recs, &kgo.Record{Value: value})
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var got int
	offset := int64(0)
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		// A new client is a new connection.
		cl := pinnedClient(t, addr, 1, 12, kgo.ClientID(reader))
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 100, 1, 64<<10
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "backlog"
		p := kmsg.NewFetchRequestTopicPartition()
		p.FetchOffset, p.PartitionMaxBytes, p.LogStartOffset, p.CurrentLeaderEpoch = offset, 64<<10, -1, -1
		rt.Partitions = append(rt.Partitions, p)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				got += len(rp.RecordBatches)
				fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "backlog", Partition: 0, KeepControlRecords: true, Offset: offset}, &rp, kgo.DefaultDecompressor(), nil)
				if n := len(fp.Records); n > 0 {
					offset = fp.Records[n-1].Offset + 1
				}
			}
		}
	}
	const bound = 200_000
	t.Logf("a client id with a quota of %d B/s, reconnecting for each fetch, read %d bytes in 4 s", limit, got)
	if got > bound {
		t.Fatalf("a client id with a quota of %d B/s, reconnecting for each fetch, read %d bytes in 4 s, over %d", limit, got, bound)
	}
}
