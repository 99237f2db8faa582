package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults used when a ProduceOptions or ConsumeOptions field is zero.
const (
	DefaultTopic      = "weir-bench"
	DefaultPartitions = 6
	DefaultRecords    = 1_000_000
	DefaultRecordSize = 100
	// DefaultMaxBufferedRecords lets the single producer keep every
	// partition's pipeline full; kgo's own default of 50,000 leaves
	// acks=all throughput on the table when batches wait for durability.
	DefaultMaxBufferedRecords = 250_000
)

// ProduceOptions describes a produce workload. The zero value of every field
// means its default.
type ProduceOptions struct {
	// Topic is created with Partitions partitions and replication factor
	// ReplicationFactor if it does not exist; default DefaultTopic.
	Topic string
	// Partitions is the partition count used when creating the topic;
	// default DefaultPartitions.
	Partitions int32
	// ReplicationFactor is used when creating the topic; 0 or -1 means
	// the broker's default.
	ReplicationFactor int16
	// Records is how many records to produce; default DefaultRecords.
	Records int
	// RecordSize is the size in bytes of every record's value (records
	// have no key); default DefaultRecordSize.
	RecordSize int
	// Acks is the acknowledgement level; the zero value is acks=all.
	Acks Acks
	// DisableIdempotence turns off the idempotent producer under acks=all.
	// Idempotence is always off for other acks levels.
	DisableIdempotence bool
	// MaxBufferedRecords caps the records the client holds before Produce
	// blocks; default DefaultMaxBufferedRecords.
	MaxBufferedRecords int
	// ClientOpts are appended last to the producer's kgo options, so they
	// override anything the workload sets (linger, compression,
	// partitioner, ...).
	ClientOpts []kgo.Opt
}

func (o *ProduceOptions) setDefaults() {
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	if o.Partitions == 0 {
		o.Partitions = DefaultPartitions
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = -1
	}
	if o.Records == 0 {
		o.Records = DefaultRecords
	}
	if o.RecordSize == 0 {
		o.RecordSize = DefaultRecordSize
	}
	if o.MaxBufferedRecords == 0 {
		o.MaxBufferedRecords = DefaultMaxBufferedRecords
	}
}

// ProduceResult holds the figures of a produce run.
type ProduceResult struct {
	Records int64         // records acknowledged without error
	Bytes   int64         // value bytes of those records
	Elapsed time.Duration // first Produce call to last acknowledgement

	// Per-record latency from the Produce call to the promise, quantiles
	// within 1.6%. Under acks=0 a promise runs once the request is
	// written, so these measure only the client.
	P50, P99, P999, Max time.Duration

	// Cuts counts the points at which the run waited for every record
	// so far: the transactions committed by ProduceTransactional, the
	// flushes of ProduceFlushing, 1 (the final flush) for Produce.
	Cuts int
	// FlushWait and EndTxnWait are the time the producer spent blocked
	// in those cuts, flushing and in EndTransaction. Set only by
	// ProduceTransactional and ProduceFlushing.
	FlushWait, EndTxnWait time.Duration
}

// RecordsPerSec returns the acknowledged records per second.
func (r ProduceResult) RecordsPerSec() float64 { return perSec(float64(r.Records), r.Elapsed) }

// MBPerSec returns the acknowledged value bytes per second in MB (10^6 bytes).
func (r ProduceResult) MBPerSec() float64 { return perSec(float64(r.Bytes)/1e6, r.Elapsed) }

func perSec(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

// producerOpts are the options tuned for throughput; ProduceOptions.ClientOpts
// are applied after them.
//
// Chosen by measuring 1M records of 100 bytes at acks=all against kfake on
// two cores: the sticky partitioner (fill one partition's batch, then move
// on) beat round-robin, least-backup and kgo's default uniform-bytes
// partitioner; 250,000 buffered records beat 50,000, 100,000 and unlimited;
// and snappy only cost CPU once the values stopped repeating.
func producerOpts(brokers []string, o ProduceOptions) ([]kgo.Opt, error) {
	ackOpts, err := ProducerOpts(o.Acks, o.Acks == AcksAll && !o.DisableIdempotence)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(o.Topic),
		kgo.MaxBufferedRecords(o.MaxBufferedRecords),
		kgo.RecordPartitioner(kgo.StickyPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	}
	opts = append(opts, ackOpts...)
	return append(opts, o.ClientOpts...), nil
}

// Produce writes opts.Records records of opts.RecordSize random bytes to
// opts.Topic through a single kgo client, creating the topic if needed, and
// waits until every record is acknowledged. It stops early, returning the
// first error, if a record fails or ctx is done.
func Produce(ctx context.Context, brokers []string, opts ProduceOptions) (ProduceResult, error) {
	opts.setDefaults()
	kopts, err := producerOpts(brokers, opts)
	if err != nil {
		return ProduceResult{}, err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return ProduceResult{}, err
	}
	defer cl.Close()
	if err := EnsureTopic(ctx, cl, opts.Topic, opts.Partitions, opts.ReplicationFactor); err != nil {
		return ProduceResult{}, err
	}

	return produceRecords(ctx, cl, opts, 0, func(ctx context.Context, _ bool) error {
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		return nil
	})
}

// cutFunc ends one stretch of a produce run: it returns once every record
// produced so far is acknowledged (and, for transactions, committed). last
// is set for the call that ends the run.
type cutFunc func(ctx context.Context, last bool) error

// produceRecords is the loop behind every produce workload: it hands
// opts.Records records to cl as fast as the client takes them and calls cut
// whenever every has passed since the previous cut (never if every is 0),
// and once after the last record. The clock runs from the first record to
// the return of the last cut, so time spent in cuts counts against
// throughput. opts must have its defaults set.
func produceRecords(ctx context.Context, cl *kgo.Client, opts ProduceOptions, every time.Duration, cut cutFunc) (ProduceResult, error) {
	// Values are consecutive slices of a random pool, so records in one
	// batch differ and compression (if a ClientOpt turns it on) cannot
	// shrink the batch to a fraction of its size.
	pool := newPayloadPool(opts.RecordSize)

	var (
		lat    latencyHistogram
		mu     sync.Mutex
		acked  int64
		failed error
		cuts   int
		cutErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	lastCut := start
	for i := 0; i < opts.Records && ctx.Err() == nil; i++ {
		sent := time.Now()
		if every > 0 && sent.Sub(lastCut) >= every {
			if cutErr = cut(ctx, false); cutErr != nil {
				break
			}
			cuts++
			sent = time.Now()
			lastCut = sent
		}
		cl.Produce(ctx, &kgo.Record{Value: pool.value(i)}, func(_ *kgo.Record, err error) {
			lat.Record(time.Since(sent))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				acked++
			} else if failed == nil {
				failed = err
				cancel() // stop queueing records behind a failure
			}
		})
	}
	if cutErr == nil {
		if cutErr = cut(ctx, true); cutErr == nil {
			cuts++
		}
	}
	elapsed := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	res := ProduceResult{
		Records: acked,
		Bytes:   acked * int64(opts.RecordSize),
		Elapsed: elapsed,
		P50:     lat.Quantile(0.5),
		P99:     lat.Quantile(0.99),
		P999:    lat.Quantile(0.999),
		Max:     lat.Quantile(1),
		Cuts:    cuts,
	}
	switch {
	case failed != nil:
		return res, fmt.Errorf("produce to %q: %w", opts.Topic, failed)
	case cutErr != nil:
		return res, cutErr
	case acked < int64(opts.Records):
		return res, fmt.Errorf("produce to %q: only %d of %d records acknowledged", opts.Topic, acked, opts.Records)
	}
	return res, nil
}
