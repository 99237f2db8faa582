package exactlyonce

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/internal/exampletest"
)

// A worker that fails in the middle of a transaction aborts it; its
// successor processes the batch again, and a read_committed reader of the
// output sees every input exactly once.
func TestFailedTransactionIsRedoneAndCommittedOutputHoldsEachInputOnce(t *testing.T) {
	addr := exampletest.Broker(t)
	const n = 100
	exampletest.Fill(t, addr, "orders", n)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "orders-upper"); err != nil {
		t.Fatal(err)
	}
	brokers := []string{addr}
	crash := errors.New("worker failed mid-transaction")
	failing := func(ctx context.Context, in *kgo.Record) ([]*kgo.Record, error) {
		if string(in.Value) == "e57" {
			return nil, crash
		}
		return Upper(ctx, in)
	}
	if err := Worker(ctx, brokers, "upper-1", "upper", "orders", "orders-upper", failing); !errors.Is(err, crash) {
		t.Fatalf("first worker: %v, want its failure", err)
	}
	// The successor runs until the committed output is complete.
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Worker(wctx, brokers, "upper-1", "upper", "orders", "orders-upper", Upper) }()
	seen := readCommitted(t, ctx, addr, "orders-upper", n)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("successor: %v", err)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("event %s in the committed output %d times", id, k)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct events in the committed output, want %d", len(seen), n)
	}
}

// readCommitted reads topic with isolation.level=read_committed until n
// records arrived, then a moment more for any extra, and counts them by
// event id.
func readCommitted(t *testing.T, ctx context.Context, addr, topic string, n int) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	total := 0
	for total < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d committed outputs: %v", total, n, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == exampletest.EventIDHeader {
					seen[string(h.Value)]++
				}
			}
			total++
		})
	}
	// Whatever else is committed shows up within a short wait.
	extra, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cl.PollFetches(extra).EachRecord(func(r *kgo.Record) {
		for _, h := range r.Headers {
			if h.Key == exampletest.EventIDHeader {
				seen[string(h.Value)]++
			}
		}
	})
	return seen
}
