package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ConsumeOptions describes a consume workload. The zero value of every field
// means its default.
type ConsumeOptions struct {
	// Topic to read; default DefaultTopic. It must already hold at least
	// Records records (run Produce first).
	Topic string
	// Records is how many records to read from the start of the topic;
	// default DefaultRecords.
	Records int
	// ReadCommitted reads with isolation level read_committed instead of
	// read_uncommitted.
	ReadCommitted bool
	// ClientOpts are appended last to the consumer's kgo options.
	ClientOpts []kgo.Opt
}

func (o *ConsumeOptions) setDefaults() {
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	if o.Records == 0 {
		o.Records = DefaultRecords
	}
}

// ConsumeResult holds the figures of a consume run.
type ConsumeResult struct {
	Records int64         // records read
	Bytes   int64         // key and value bytes of those records
	Elapsed time.Duration // first poll until the last record was returned
}

// RecordsPerSec returns the records read per second.
func (r ConsumeResult) RecordsPerSec() float64 { return perSec(float64(r.Records), r.Elapsed) }

// MBPerSec returns the key and value bytes read per second in MB (10^6 bytes).
func (r ConsumeResult) MBPerSec() float64 { return perSec(float64(r.Bytes)/1e6, r.Elapsed) }

// Consume reads opts.Records records from the start of every partition of
// opts.Topic with a single kgo client, without a group. It fails at once if
// the topic holds fewer records than asked for, rather than waiting forever.
func Consume(ctx context.Context, brokers []string, opts ConsumeOptions) (ConsumeResult, error) {
	opts.setDefaults()
	kopts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(opts.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	if opts.ReadCommitted {
		kopts = append(kopts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(append(kopts, opts.ClientOpts...)...)
	if err != nil {
		return ConsumeResult{}, err
	}
	defer cl.Close()

	have, err := availableRecords(ctx, cl, opts.Topic)
	if err != nil {
		return ConsumeResult{}, err
	}
	if have < int64(opts.Records) {
		return ConsumeResult{}, fmt.Errorf("topic %q holds %d records, fewer than the %d to consume; produce more first", opts.Topic, have, opts.Records)
	}

	var res ConsumeResult
	start := time.Now()
	for res.Records < int64(opts.Records) {
		fetches := cl.PollRecords(ctx, opts.Records-int(res.Records))
		if err := fetchError(fetches); err != nil {
			res.Elapsed = time.Since(start)
			return res, err
		}
		fetches.EachRecord(func(r *kgo.Record) {
			res.Records++
			res.Bytes += int64(len(r.Key) + len(r.Value))
		})
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// fetchError returns the first error in fetches that should stop a reader.
// kgo reports retriable conditions it handles itself only as hints, so every
// error it surfaces here is either the end (closed client, done context) or
// something the user must see.
func fetchError(fetches kgo.Fetches) error {
	var first error
	fetches.EachError(func(topic string, partition int32, err error) {
		if first != nil {
			return
		}
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrClientClosed):
			first = err
		default:
			first = fmt.Errorf("fetch %s[%d]: %w", topic, partition, err)
		}
	})
	return first
}
