// Package atleastonce is the at-least-once pattern with an idempotent
// handler: the consumer processes a batch and only then commits its
// offsets, so a consumer that dies in between loses nothing and its
// successor sees the uncommitted records again. A dedup store (pkg/dedup)
// remembers each processed event id in the same bbolt transaction as the
// record's effect, so the redelivered records change nothing: the effects
// are exactly-once.
//
// The producer side is acks=all with idempotence (franz-go's defaults) on
// a topic with replication.factor=3 and min.insync.replicas=2. See
// docs/guarantees.md.
package atleastonce

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	bolt "go.etcd.io/bbolt"

	"github.com/weir-broker/weir/pkg/dedup"
)

// Apply writes one record's effect through tx.
type Apply func(tx *bolt.Tx, r *kgo.Record) error

// Consume reads topic as a member of group until want records were
// handled (processed or skipped as already done), passing each through
// the dedup store keyed by the event-id header, and commits each batch
// after it is processed. With stopAfter > 0 it stops after handling that
// many records, before committing their batch, as a crash would.
func Consume(ctx context.Context, brokers []string, group, topic string, store *dedup.BoltStore, apply Apply, stopAfter, want int) (handled int, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	handle := dedup.WrapTx(store, dedup.KeyFromHeader("event-id"), apply)
	for handled < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return handled, err
		}
		if err := fs.Err0(); err != nil {
			return handled, fmt.Errorf("poll: %w", err)
		}
		batch := fs.Records()
		for _, r := range batch {
			if stopAfter > 0 && handled == stopAfter {
				return handled, nil // dies before the commit
			}
			if err := handle(r); err != nil {
				return handled, err
			}
			handled++
		}
		// Commit only what is processed.
		if err := cl.CommitRecords(ctx, batch...); err != nil {
			return handled, fmt.Errorf("commit: %w", err)
		}
	}
	return handled, nil
}
