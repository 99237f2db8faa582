// Package bench is the produce and consume workload behind `weir bench`.
//
// The workload talks to brokers only through franz-go's kgo client, so the
// same code measures Weir, Apache Kafka, Redpanda or franz-go's in-memory
// kfake cluster. Keeping it here rather than in the CLI lets a Go benchmark
// run the identical workload against several clusters in one process and
// compare the figures.
//
// Throughput is measured from the first record handed to the client until
// the last one is acknowledged (produce) or returned by a poll (consume).
// Produce latency is per record: from the call to kgo's Produce until its
// promise runs, so it includes time spent waiting in the client's buffer.
// With the defaults the producer is saturated, so the percentiles describe a
// system under full load, not an idle one.
package bench
