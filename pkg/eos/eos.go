package eos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Transform turns one input record into output records. Outputs without
// a Topic go to Config.OutputTopic. An error aborts the transaction and
// stops the processor; the input is consumed again after a restart.
type Transform func(ctx context.Context, in *kgo.Record) ([]*kgo.Record, error)

// Config configures a Processor.
type Config struct {
	Brokers         []string
	TransactionalID string // one per worker instance, stable across its restarts
	Group           string
	InputTopics     []string
	OutputTopic     string        // default topic of outputs
	MaxPerTxn       int           // input records per transaction; default 500
	TxnTimeout      time.Duration // transaction.timeout.ms; default 60s
	// OnCommit, when set, is called after each committed transaction with
	// the number of input records it covered.
	OnCommit func(inputs int)
	// ClientOpts are added last to the client's options.
	ClientOpts []kgo.Opt
}

// Processor is one consume-transform-produce worker.
type Processor struct {
	cfg  Config
	fn   Transform
	sess *kgo.GroupTransactSession
}

// New creates a processor; nothing is consumed until Run.
func New(cfg Config, fn Transform) (*Processor, error) {
	switch {
	case cfg.TransactionalID == "":
		return nil, errors.New("eos: a transactional id is required")
	case cfg.Group == "":
		return nil, errors.New("eos: a consumer group is required")
	case len(cfg.InputTopics) == 0:
		return nil, errors.New("eos: at least one input topic is required")
	}
	if cfg.MaxPerTxn <= 0 {
		cfg.MaxPerTxn = 500
	}
	if cfg.TxnTimeout <= 0 {
		cfg.TxnTimeout = time.Minute
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.TransactionTimeout(cfg.TxnTimeout),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.InputTopics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), // inputs may be transactional outputs
	}
	if cfg.OutputTopic != "" {
		opts = append(opts, kgo.DefaultProduceTopic(cfg.OutputTopic))
	}
	sess, err := kgo.NewGroupTransactSession(append(opts, cfg.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("eos: %w", err)
	}
	return &Processor{cfg: cfg, fn: fn, sess: sess}, nil
}

// Close leaves the group and closes the client.
func (p *Processor) Close() { p.sess.Close() }

// Run processes until ctx ends (nil) or the processor fails: fenced,
// a transform error, or a produce error (the error).
func (p *Processor) Run(ctx context.Context) error {
	// Fence the previous instance at once: InitProducerId aborts what it
	// left open, so its pending offsets do not hold the group back until
	// its transaction times out.
	if err := p.sess.Begin(); err != nil {
		return fmt.Errorf("eos: begin: %w", err)
	}
	if _, err := p.sess.End(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("eos: initial abort: %w", err)
	}
	for {
		fs := p.sess.PollRecords(ctx, p.cfg.MaxPerTxn)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		var fetchErr error
		fs.EachError(func(t string, part int32, err error) {
			if fetchErr == nil {
				fetchErr = fmt.Errorf("eos: fetch %s/%d: %w", t, part, err)
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		if fs.Empty() {
			continue
		}
		committed, n, err := p.transact(ctx, fs)
		if err != nil {
			return err
		}
		if committed && p.cfg.OnCommit != nil {
			p.cfg.OnCommit(n)
		}
	}
}

// transact runs one transaction over the polled records.
func (p *Processor) transact(ctx context.Context, fs kgo.Fetches) (committed bool, inputs int, err error) {
	if err := p.sess.Begin(); err != nil {
		return false, 0, fmt.Errorf("eos: begin: %w", err)
	}
	var (
		mu     sync.Mutex // guards failed: produce callbacks run elsewhere
		failed error
	)
	fail := func(err error) {
		mu.Lock()
		if failed == nil {
			failed = err
		}
		mu.Unlock()
	}
	for _, in := range fs.Records() {
		outs, err := p.fn(ctx, in)
		if err != nil {
			fail(fmt.Errorf("eos: transform %s/%d@%d: %w", in.Topic, in.Partition, in.Offset, err))
			break
		}
		for _, out := range outs {
			p.sess.Produce(ctx, out, func(_ *kgo.Record, err error) {
				if err != nil {
					fail(fmt.Errorf("eos: produce: %w", err))
				}
			})
		}
		inputs++
	}
	if err := p.sess.Client().Flush(ctx); err != nil {
		fail(fmt.Errorf("eos: flush: %w", err))
	}
	mu.Lock()
	defer mu.Unlock()
	if failed != nil {
		// Abort: neither the outputs nor the offsets commit.
		if _, err := p.sess.End(ctx, kgo.TryAbort); err != nil {
			return false, 0, errors.Join(failed, err)
		}
		return false, 0, failed
	}
	committed, err = p.sess.End(ctx, kgo.TryCommit)
	if err != nil {
		return false, 0, fmt.Errorf("eos: end: %w", err)
	}
	return committed, inputs, nil
}
