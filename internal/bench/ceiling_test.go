package bench

import (
	"context"
	"testing"

	"github.com/weir-broker/weir/pkg/weir"
)

// BenchmarkReplayConsume is the consume benchmark against the replay server
// (replay_test.go): the same b.N records, produced to a durable Weir and
// captured batch for batch as Weir serves them, then served from memory
// with next to no work per fetch. It is the ceiling of the consume
// benchmark on this machine: no broker can answer a fetch for less.
//
// One thing besides the broker's work differs between in-process runs: the
// heap. kfake and the replay server keep every record on the Go heap
// (about 110 MB for 1M records), Weir keeps them in files. A larger live
// heap makes the collector run less often for the consumer's own
// allocations (a few hundred bytes per record), so in-process figures
// favour clusters that hold their data in memory; the *Separate
// benchmarks do not share a heap.
func BenchmarkReplayConsume(b *testing.B) { runReplayConsumeBench(b, false) }

// BenchmarkReplayCopyConsume is BenchmarkReplayConsume with the replay
// server copying the batches into fresh buffers and encoding every
// response with kmsg, as a broker reading its log does: the difference
// between the two is what those copies cost.
func BenchmarkReplayCopyConsume(b *testing.B) { runReplayConsumeBench(b, true) }

func runReplayConsumeBench(b *testing.B, copying bool) {
	ctx := context.Background()
	b.StopTimer()
	w, err := weir.Start(ctx, weir.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	addrs := []string{w.Addr()}
	if _, err := Produce(ctx, addrs, ProduceOptions{Topic: benchTopic, Records: b.N}); err != nil {
		w.Close()
		b.Fatal(err)
	}
	parts, err := captureTopic(ctx, addrs, benchTopic)
	w.Close()
	if err != nil {
		b.Fatal(err)
	}
	srv, err := startReplay(benchTopic, parts, copying)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	runConsumeTimed(b, []string{srv.Addr()})
}
