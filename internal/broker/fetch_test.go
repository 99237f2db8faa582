package broker_test

// Fetch's wait for data, on a real broker over a real socket.

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/broker"
	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/server"
)

// serveBroker opens a broker on a fresh directory and serves it on a
// local port until the test ends.
func serveBroker(t *testing.T, settings map[string]string) (*broker.Broker, string) {
	t.Helper()
	s := config.NewBroker()
	for k, v := range settings {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{NodeID: int32(s.Int("node.id")), DataDir: t.TempDir(), Settings: s, Logger: logger})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	b.SetAdvertised("127.0.0.1", int32(ln.Addr().(*net.TCPAddr).Port))
	srv := server.New(ln, b, server.Limits{MaxFrameBytes: 100 << 20, MaxConnections: 100, MaxInflightReqs: 100}, logger, nil)
	t.Cleanup(func() {
		srv.Close()
		b.Close()
	})
	return b, ln.Addr().String()
}

func dialBroker(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// A record that becomes readable after a fetch has read its partitions,
// but before the fetch has started waiting, is returned by that fetch:
// the fetch is not left asleep for its whole max wait. The test hook
// appends the record, durably, in exactly that window.
func TestFetchReturnsARecordWrittenBetweenItsReadAndItsWait(t *testing.T) {
	b, addr := serveBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := dialBroker(t, addr)
	created, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t")
	if err != nil || created.Err != nil {
		t.Fatalf("create topic: %v %v", err, created.Err)
	}
	producer := dialBroker(t, addr, kgo.DefaultProduceTopic("t"))
	var once sync.Once
	produceErr := make(chan error, 1)
	broker.SetAfterFetchRead(b, func() {
		once.Do(func() {
			// acks=all: the high watermark has moved when this returns.
			produceErr <- producer.ProduceSync(ctx, &kgo.Record{Value: []byte("between")}).FirstErr()
		})
	})
	defer broker.SetAfterFetchRead(b, nil)

	const maxWaitMs = 10_000
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, maxWaitMs, 1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = "t", created.ID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, 0, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-produceErr; err != nil {
		t.Fatalf("produce in the window: %v", err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.HighWatermark != 1 || len(p.RecordBatches) == 0 {
		t.Fatalf("fetch answered with error %d, high watermark %d, %d bytes of records: the record written before the wait began was not returned (the fetch slept its %d ms max wait)",
			p.ErrorCode, p.HighWatermark, len(p.RecordBatches), maxWaitMs)
	}
}
