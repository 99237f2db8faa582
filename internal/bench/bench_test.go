package bench

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The helpers below run the workload of `weir bench` with b.N records and
// report its figures, so the same code measures any cluster. To add one,
// start it and call them with its listen addresses, e.g.
//
//	func BenchmarkWeirProduce(b *testing.B) {
//		addrs := startWeir(b) // pkg/weir
//		runProduceBench(b, addrs)
//	}

// benchTopic is the topic every cluster under comparison is seeded with.
const benchTopic = DefaultTopic

// runProduceBench produces b.N records of DefaultRecordSize bytes at
// acks=all with idempotence, and reports records/s, MB/s and latency
// quantiles.
func runProduceBench(b *testing.B, brokers []string) {
	runProduceBenchWith(b, brokers, ProduceOptions{})
}

// runProduceBenchWith is runProduceBench with options (topic and record
// count are set here).
func runProduceBenchWith(b *testing.B, brokers []string, opts ProduceOptions) {
	b.Helper()
	opts.Topic, opts.Records = benchTopic, b.N
	b.ResetTimer()
	res, err := Produce(context.Background(), brokers, opts)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	reportProduce(b, res)
}

// reportProduce reports a produce run's records/s, MB/s and latency
// quantiles.
func reportProduce(b *testing.B, res ProduceResult) {
	b.Helper()
	b.SetBytes(DefaultRecordSize)
	b.ReportMetric(res.RecordsPerSec(), "records/s")
	b.ReportMetric(float64(res.P50.Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(res.P99.Microseconds())/1e3, "p99-ms")
	b.ReportMetric(float64(res.P999.Microseconds())/1e3, "p999-ms")
}

// runConsumeBench produces b.N records untimed, then times reading b.N
// records from the start of the topic and reports records/s (see
// runConsumeTimed).
func runConsumeBench(b *testing.B, brokers []string) {
	b.Helper()
	b.StopTimer()
	if _, err := Produce(context.Background(), brokers, ProduceOptions{Topic: benchTopic, Records: b.N}); err != nil {
		b.Fatal(err)
	}
	runConsumeTimed(b, brokers)
}

// runConsumeTimed times reading b.N records from the start of the topic,
// which must hold them, and reports records/s, the fetch responses the
// consumer read (how many, and their average size) and the process's CPU
// time per record.
//
// An untimed read of the same records comes first. The first read in a
// process is slower by a margin that depends on what ran before it (the
// consumer allocates a few hundred bytes per record, and a heap that has
// not yet grown to that size pays for fresh pages from the kernel), which
// would favour whichever cluster's setup happened to leave the larger heap
// behind; the timed read measures the steady state instead.
func runConsumeTimed(b *testing.B, brokers []string) {
	b.Helper()
	ctx := context.Background()
	opts := ConsumeOptions{Topic: benchTopic, Records: b.N}
	if _, err := Consume(ctx, brokers, opts); err != nil {
		b.Fatal(err)
	}
	var fetches fetchCounter
	opts.ClientOpts = []kgo.Opt{kgo.WithHooks(&fetches)}
	runtime.GC() // start the clock with no collection owed by the setup
	cpu0, cpuOK := processCPU()
	b.StartTimer()
	res, err := Consume(ctx, brokers, opts)
	b.StopTimer()
	cpu1, _ := processCPU()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(DefaultRecordSize)
	b.ReportMetric(res.RecordsPerSec(), "records/s")
	n, bytes := fetches.load()
	b.ReportMetric(float64(n), "fetches")
	if n > 0 {
		b.ReportMetric(float64(bytes)/float64(n)/1e6, "MB/fetch")
	}
	if cpuOK && res.Records > 0 {
		// CPU time of this process per record read: the consumer's and,
		// when the cluster runs in this process, the cluster's. It moves
		// much less than records/s when other work competes for the
		// cores.
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(res.Records), "cpu-ns/record")
	}
}

// fetchCounter is a kgo hook counting the Fetch responses a client reads
// and their bytes.
type fetchCounter struct{ n, bytes atomic.Int64 }

// OnBrokerRead implements kgo.HookBrokerRead.
func (c *fetchCounter) OnBrokerRead(_ kgo.BrokerMetadata, key int16, bytesRead int, _, _ time.Duration, err error) {
	if key == 1 && err == nil { // Fetch
		c.n.Add(1)
		c.bytes.Add(int64(bytesRead))
	}
}

func (c *fetchCounter) load() (n, bytes int64) { return c.n.Load(), c.bytes.Load() }
