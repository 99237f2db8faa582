package bench

import (
	"context"
	"testing"
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
// records from the start of the topic and reports records/s.
func runConsumeBench(b *testing.B, brokers []string) {
	b.Helper()
	ctx := context.Background()
	b.StopTimer()
	if _, err := Produce(ctx, brokers, ProduceOptions{Topic: benchTopic, Records: b.N}); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	res, err := Consume(ctx, brokers, ConsumeOptions{Topic: benchTopic, Records: b.N})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(DefaultRecordSize)
	b.ReportMetric(res.RecordsPerSec(), "records/s")
}
