package inventory_test

import (
	"context"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/internal/exampletest"
	"github.com/weir-broker/weir/examples/inventory"
)

// runOneWorker starts a broker and one worker process, creates the topics
// with one partition, and writes events; it returns the broker address
// and the worker.
func runOneWorker(t *testing.T, ctx context.Context, events ...*kgo.Record) (string, *exampletest.Service) {
	t.Helper()
	addr := exampletest.FreeAddr(t)
	broker := exampletest.NewService("broker", weirBin, "serve", "--listen", addr, "--data", t.TempDir(),
		"--set", "group.initial.rebalance.delay.ms=0")
	worker := exampletest.NewService("worker-0", workerBin, "--brokers", addr, "--id", "worker-0",
		"--state", filepath.Join(t.TempDir(), "worker-0"))
	t.Cleanup(func() {
		worker.Stop()
		broker.Stop()
		if t.Failed() {
			out := worker.Log()
			t.Logf("worker output (its end):\n%s", out[max(0, len(out)-2000):])
		}
	})
	broker.Start(t)
	exampletest.WaitListening(t, addr)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(inventory.EventsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, topic := range []string{inventory.EventsTopic, inventory.StockTopic} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.ProduceSync(ctx, events...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	worker.Start(t)
	return addr, worker
}

// waitStock polls the committed output until item's stock is want.
func waitStock(t *testing.T, ctx context.Context, addr, item string, want int64, d time.Duration) (map[string]int64, bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := finalStock(t, ctx, addr)
		if n, ok := got[item]; ok && n == want {
			return got, true
		}
		if time.Now().After(deadline) {
			return got, false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// An event whose item key is longer than the store accepts (bbolt's 32
// KiB) is bad input like a malformed event, which Stock's doc says is
// skipped, not retried forever. Today the store's key error stops the
// worker; restarted, it meets the same event and stops again, so no
// later event of the partition is ever applied. Correct outcome: the
// oversized event is skipped, the next event is applied (apple's stock
// becomes 997) and the worker never fails.
func TestEventWithOversizedItemKeyIsSkipped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	addr, worker := runOneWorker(t, ctx,
		&kgo.Record{Key: []byte(strings.Repeat("x", 40<<10)), Value: inventory.Event(inventory.Order, 1)},
		&kgo.Record{Key: []byte("apple"), Value: inventory.Event(inventory.Order, 3)},
	)
	got, ok := waitStock(t, ctx, addr, "apple", inventory.InitialStock-3, 20*time.Second)
	if !ok {
		t.Errorf("apple's stock %v after an oversized event, want %d; the worker failed and was restarted %d times",
			got, inventory.InitialStock-3, worker.Restarts())
	}
	if n := worker.Restarts(); n > 0 {
		t.Errorf("the worker failed %d times on one oversized event", n)
	}
}

// A restock whose quantity takes the stock past the int64 range must be
// rejected as malformed, not applied: Delta accepts any non-negative
// int64 and Stock adds it without a check, so the stock wraps around to a
// large negative number, committed to the store and the output. Correct
// outcome: no committed stock of pear is negative, and later events are
// still applied (apple's stock becomes 997).
func TestRestockPastInt64IsNotAppliedAsANegativeStock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	addr, _ := runOneWorker(t, ctx,
		&kgo.Record{Key: []byte("pear"), Value: inventory.Event(inventory.Restock, math.MaxInt64)},
		&kgo.Record{Key: []byte("apple"), Value: inventory.Event(inventory.Order, 3)},
	)
	got, ok := waitStock(t, ctx, addr, "apple", inventory.InitialStock-3, 20*time.Second)
	if !ok {
		t.Fatalf("stock %v, want apple at %d", got, inventory.InitialStock-3)
	}
	if n, ok := got["pear"]; ok && n < 0 {
		t.Errorf("pear's committed stock after a restock of %s: %d", strconv.FormatInt(math.MaxInt64, 10), n)
	}
}
