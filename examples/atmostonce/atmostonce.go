// Package atmostonce is the at-most-once pattern: the consumer commits a
// batch's offsets before it processes the batch, so a consumer that dies
// mid-batch never sees the rest of it again. Nothing is processed twice;
// what the dead consumer had not reached is lost.
//
// The producer side of the pattern is acks=0 without idempotence
// (kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()): nothing is
// retried, so nothing is written twice, and a record the broker never
// stored is lost without anyone being told. See docs/guarantees.md.
package atmostonce

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Produce writes values with acks=0: fire and forget.
func Produce(ctx context.Context, brokers []string, topic string, values [][]byte) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		return err
	}
	defer cl.Close()
	for _, v := range values {
		cl.Produce(ctx, &kgo.Record{Value: v}, nil)
	}
	return cl.Flush(ctx)
}

// Consume reads topic as a member of group and calls process for each
// record after committing the batch it came in. With stopAfter > 0 it
// stops after processing that many records, as a crash would: the rest
// of the committed batch is never processed.
func Consume(ctx context.Context, brokers []string, group, topic string, process func(*kgo.Record), stopAfter, want int) (processed int, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	for processed < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return processed, err
		}
		if err := fs.Err0(); err != nil {
			return processed, fmt.Errorf("poll: %w", err)
		}
		batch := fs.Records()
		// Commit first: from here on, these records count as done.
		if err := cl.CommitRecords(ctx, batch...); err != nil {
			return processed, fmt.Errorf("commit: %w", err)
		}
		for _, r := range batch {
			if stopAfter > 0 && processed == stopAfter {
				return processed, nil
			}
			process(r)
			processed++
		}
	}
	return processed, nil
}
