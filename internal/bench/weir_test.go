package bench

import (
	"context"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/weir"
)

// startWeir runs a real, durable Weir broker (fsync on acks=all) on a
// temporary directory.
func startWeir(tb testing.TB) []string {
	tb.Helper()
	w, err := weir.Start(context.Background(), weir.Config{DataDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close() })
	return []string{w.Addr()}
}

func BenchmarkWeirProduce(b *testing.B) { runProduceBench(b, startWeir(b)) }

// BenchmarkWeirProduceNonIdempotent is BenchmarkWeirProduce without
// idempotence: the pair measures what the producer-state checks cost.
func BenchmarkWeirProduceNonIdempotent(b *testing.B) {
	// Five requests in flight, as an idempotent producer keeps: kgo's
	// default without idempotence is one, which would measure pipelining
	// rather than the producer-state checks.
	runProduceBenchWith(b, startWeir(b), ProduceOptions{DisableIdempotence: true,
		ClientOpts: []kgo.Opt{kgo.MaxProduceRequestsInflightPerBroker(5)}})
}

func BenchmarkWeirConsume(b *testing.B) { runConsumeBench(b, startWeir(b)) }

// BenchmarkWeirConsumeHeap is BenchmarkWeirConsume with an idle buffer
// about the size of the records (what kfake and the replay server hold on
// the Go heap) kept alive in the process. It is diagnostic: the difference
// from BenchmarkWeirConsume is how much the in-process figures depend on
// the collector's pacing rather than on the broker's work.
func BenchmarkWeirConsumeHeap(b *testing.B) {
	heap := make([]byte, b.N*(DefaultRecordSize+8)) // never touched: no resident pages
	runConsumeBench(b, startWeir(b))
	runtime.KeepAlive(heap)
}
