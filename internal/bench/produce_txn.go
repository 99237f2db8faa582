package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrTransactionsNeedIdempotence is returned when ProduceTransactional or
// ProduceFlushing is asked for without idempotence or with acks other than
// all: KIP-98 transactions are built on the idempotent producer.
var ErrTransactionsNeedIdempotence = errors.New("transactional produce requires acks=all and idempotence")

// ProduceTransactional is Produce inside transactions: one transactional
// client (a fresh transactional id per call) produces opts.Records records
// and commits every commitEvery — Flush, then EndTransaction with
// TryCommit, then BeginTransaction — and commits the last, partial
// transaction at the end. Records are counted when acknowledged; the run
// fails if any commit does.
//
// Compare it with ProduceFlushing at the same interval, not with Produce:
// a commit must first flush, which drains the client's pipeline, and
// ProduceFlushing pays that drain without the transaction, so the
// difference between the two is what transactions themselves cost
// (AddPartitionsToTxn, the KIP-890 checks, EndTxn and its markers).
//
// commitEvery should stay well below the transaction timeout (kgo's
// default is 40 s; a kgo.TransactionTimeout in opts.ClientOpts overrides
// it).
func ProduceTransactional(ctx context.Context, brokers []string, opts ProduceOptions, commitEvery time.Duration) (ProduceResult, error) {
	return produceEvery(ctx, brokers, opts, commitEvery, true)
}

// ProduceFlushing is the idempotent counterpart of ProduceTransactional:
// the same client settings and loop, with a Flush every flushEvery where
// ProduceTransactional commits, and no transaction.
func ProduceFlushing(ctx context.Context, brokers []string, opts ProduceOptions, flushEvery time.Duration) (ProduceResult, error) {
	return produceEvery(ctx, brokers, opts, flushEvery, false)
}

func produceEvery(ctx context.Context, brokers []string, opts ProduceOptions, every time.Duration, transactional bool) (ProduceResult, error) {
	opts.setDefaults()
	if every <= 0 {
		return ProduceResult{}, fmt.Errorf("interval %v: must be positive", every)
	}
	// The flushing baseline refuses the same options: it is only a
	// baseline while it is the idempotent producer a transactional one is.
	if opts.Acks != AcksAll || opts.DisableIdempotence {
		return ProduceResult{}, ErrTransactionsNeedIdempotence
	}
	kopts, err := producerOpts(brokers, opts)
	if err != nil {
		return ProduceResult{}, err
	}
	if transactional {
		kopts = append([]kgo.Opt{kgo.TransactionalID(benchTransactionalID())}, kopts...)
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return ProduceResult{}, err
	}
	defer cl.Close()
	if err := EnsureTopic(ctx, cl, opts.Topic, opts.Partitions, opts.ReplicationFactor); err != nil {
		return ProduceResult{}, err
	}
	// Get the producer id before the clock starts: for a transactional
	// id the broker's first InitProducerId may also create its
	// transaction state topic, a one-off cost that is not the cost of
	// a transaction.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return ProduceResult{}, fmt.Errorf("init producer id: %w", err)
	}

	var flushWait, endWait time.Duration
	cut := func(ctx context.Context, last bool) error {
		t0 := time.Now()
		err := cl.Flush(ctx)
		t1 := time.Now()
		flushWait += t1.Sub(t0)
		if err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		if !transactional {
			return nil
		}
		err = cl.EndTransaction(ctx, kgo.TryCommit)
		endWait += time.Since(t1)
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if last {
			return nil
		}
		return cl.BeginTransaction()
	}
	if transactional {
		if err := cl.BeginTransaction(); err != nil {
			return ProduceResult{}, err
		}
	}
	res, err := produceRecords(ctx, cl, opts, every, cut)
	res.FlushWait, res.EndTxnWait = flushWait, endWait
	if err != nil && transactional {
		// Leave nothing open behind a failed run; the broker would
		// otherwise abort it only after the transaction timeout.
		abortCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if cl.AbortBufferedRecords(abortCtx) == nil {
			_ = cl.EndTransaction(abortCtx, kgo.TryAbort)
		}
	}
	return res, err
}

// benchTransactionalID returns a transactional id no other run uses, so a
// run never fences another or inherits its state.
func benchTransactionalID() string {
	var b [8]byte
	rand.Read(b[:])
	return "weir-bench-" + hex.EncodeToString(b[:])
}
