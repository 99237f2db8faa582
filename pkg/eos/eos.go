package eos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Transform turns one input record into output records. Outputs without
// a Topic go to Config.OutputTopic. An error aborts the transaction and
// stops the processor; the input is consumed again after a restart.
type Transform func(ctx context.Context, in *kgo.Record) ([]*kgo.Record, error)

// Process is a Transform with a state store: the store of the input's
// partition, whose changes commit in the same transaction as the outputs.
type Process func(ctx context.Context, in *kgo.Record, store Store) ([]*kgo.Record, error)

// Config configures a Processor.
type Config struct {
	Brokers         []string
	TransactionalID string // one per worker instance, stable across its restarts
	Group           string // also the application id that names changelogs
	InputTopics     []string
	OutputTopic     string        // default topic of outputs
	MaxPerTxn       int           // input records per transaction; default 500
	TxnTimeout      time.Duration // transaction.timeout.ms; default 60s
	// Store names the state store of a stateful processor (NewStateful);
	// its changelog is ChangelogTopic(Group, Store).
	Store string
	// StateDir holds a stateful processor's local stores, one bbolt file
	// per input partition under a directory named by the application
	// (Group); one state directory per worker instance.
	StateDir string
	// Registerer, when set, receives the processor's metrics: restore
	// progress, commit latency, aborts and input lag.
	Registerer prometheus.Registerer
	// OnCommit, when set, is called after each committed transaction with
	// the number of input records it covered.
	OnCommit func(inputs int)
	// Standby, for a stateful processor, keeps a warm copy of the store of
	// every input partition this worker does not own, following its
	// changelog, so that a partition moved here (its owner failed) is
	// restored from where the copy is rather than from the start
	// (num.standby.replicas in Kafka Streams).
	Standby bool
	// ClientOpts are added last to the client's options (and to the
	// restore consumer's: TLS, SASL). A partitioner given here must send
	// changelog records to the partition they name; a stateful processor
	// sets its own group balancer, which must not be replaced.
	ClientOpts []kgo.Opt
}

// Processor is one consume-transform-produce worker.
type Processor struct {
	cfg       Config
	fn        Process
	stateful  bool
	changelog string
	// changelogID is the changelog's topic id, set by Run before any
	// store is restored; a store that applied another changelog is wiped.
	changelogID [16]byte
	sess        *kgo.GroupTransactSession
	adm         *kadm.Client
	metrics     *metrics
	// purge, set on a Topology's aggregating stage, deletes the
	// repartition records it has committed.
	purge *purger
	// partitions is the input partition count, set by Run; standby is
	// the standby replicas' changelog tail (Config.Standby).
	partitions int32
	standby    *standbys

	mu     sync.RWMutex // guards tasks, each task's restore and serving flags, toOpen and owned
	tasks  map[int32]*task
	toOpen map[int32]bool // assigned partitions whose store is not prepared yet
	owned  map[int32]bool // partitions of the current assignment
}

// New creates a stateless processor; nothing is consumed until Run.
func New(cfg Config, fn Transform) (*Processor, error) {
	return newProcessor(cfg, func(ctx context.Context, in *kgo.Record, _ Store) ([]*kgo.Record, error) {
		return fn(ctx, in)
	}, false)
}

// NewStateful creates a processor whose Process function keeps state in
// the store Config.Store, kept exactly-once through its changelog topic.
func NewStateful(cfg Config, fn Process) (*Processor, error) {
	switch {
	case cfg.Store == "":
		return nil, errors.New("eos: a store name is required")
	case cfg.StateDir == "":
		return nil, errors.New("eos: a state directory is required")
	}
	return newProcessor(cfg, fn, true)
}

func newProcessor(cfg Config, fn Process, stateful bool) (*Processor, error) {
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
	m, err := newMetrics(cfg.Registerer, cfg.Group)
	if err != nil {
		return nil, fmt.Errorf("eos: metrics: %w", err)
	}
	p := &Processor{cfg: cfg, fn: fn, stateful: stateful, metrics: m, tasks: map[int32]*task{}, toOpen: map[int32]bool{}, owned: map[int32]bool{}}
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
	if stateful {
		p.changelog = ChangelogTopic(cfg.Group, cfg.Store)
		opts = append(opts,
			kgo.RecordPartitioner(changelogPartitioner{p.changelog, kgo.UniformBytesPartitioner(64<<10, true, true, nil)}),
			// Partition p of every input topic goes to one member: the
			// store and the changelog partition are per partition number.
			kgo.Balancers(&copartitionBalancer{joining: p.joining}),
			kgo.OnPartitionsAssigned(p.assigned),
			kgo.OnPartitionsRevoked(p.revoked),
			kgo.OnPartitionsLost(p.revoked),
		)
	}
	sess, err := kgo.NewGroupTransactSession(append(opts, cfg.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("eos: %w", err)
	}
	p.sess, p.adm = sess, kadm.NewClient(sess.Client())
	return p, nil
}

// The served partitions follow the assignment exactly. The group session
// skips the revoke and lost callbacks while its own flag from an earlier
// revocation is set (until the next transaction ends), so an idle worker
// would miss its second revocation; the balancer is eager, so joining —
// which every rebalance goes through — is where a member stops owning
// anything, and the assignment that follows is its whole set.

// joining drops every partition: an eager member that joins a generation
// owns nothing until SyncGroup assigns it partitions.
func (p *Processor) joining() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.owned)
	clear(p.toOpen)
	for _, t := range p.tasks {
		t.serving = false
	}
}

// assigned marks assigned partitions for a restore: another worker may
// have changed their changelog since this one last held them. It runs
// before the partitions' offsets are fetched, so before any of their
// records is polled; the processing loop restores them at its next turn
// even when no record of theirs arrives.
func (p *Processor) assigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ps := range parts {
		for _, part := range ps {
			p.owned[part] = true
			p.toOpen[part] = true
			if t := p.tasks[part]; t != nil {
				t.restore, t.serving = true, false
			}
		}
	}
}

// revoked stops queries of partitions this worker no longer owns.
func (p *Processor) revoked(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ps := range parts {
		for _, part := range ps {
			delete(p.owned, part)
			delete(p.toOpen, part)
			if t := p.tasks[part]; t != nil {
				t.serving = false
			}
		}
	}
}

// Close leaves the group, closes the client and closes the stores,
// writing their checkpoints: the local stores hold only committed
// changes, so the next start restores nothing it already has. Call it
// after Run has returned.
func (p *Processor) Close() {
	p.sess.Close()
	if p.standby != nil {
		p.standby.cl.Close()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for part, t := range p.tasks {
		_ = t.close(true)
		delete(p.tasks, part)
	}
}

// stoppedOr is nil when ctx has ended (a stop asked for during start-up
// is a stop, not a failure) and err otherwise.
func stoppedOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Run processes until ctx ends (nil) or the processor fails: fenced,
// a transform error, or a produce error (the error). A transaction open
// when ctx ends is aborted before Run returns.
func (p *Processor) Run(ctx context.Context) error {
	if p.stateful {
		n, err := inputPartitions(ctx, p.adm, p.cfg.InputTopics)
		if err != nil {
			return stoppedOr(ctx, err)
		}
		id, err := ensureChangelog(ctx, p.adm, p.changelog, n)
		if err != nil {
			return stoppedOr(ctx, err)
		}
		p.changelogID, p.partitions = id, n
	}
	// Fence the previous instance at once: the client would send
	// InitProducerId only with its first produce, and until then the
	// transaction a killed predecessor left open keeps its pending
	// offsets unstable, holding the group's offset fetch back until the
	// transaction times out. Loading the producer id now makes the
	// coordinator abort that transaction and bump the epoch (KIP-98).
	if _, _, err := p.sess.Client().ProducerID(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("eos: initializing the producer id: %w", err)
	}
	for {
		fs := p.poll(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		var fetchErr error
		fs.EachError(func(t string, part int32, err error) {
			if fetchErr == nil && !errors.Is(err, context.DeadlineExceeded) && !membershipLost(err) {
				fetchErr = fmt.Errorf("eos: fetch %s/%d: %w", t, part, err)
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		if p.stateful {
			if err := p.prepareTasks(ctx, fs); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if p.cfg.Standby {
				if err := p.tendStandbys(ctx); err != nil {
					return err
				}
			}
		}
		if fs.Empty() {
			continue
		}
		p.metrics.polled(fs)
		committed, n, err := p.transact(ctx, fs)
		if errors.Is(err, errStopped) {
			return nil
		}
		if err != nil {
			return err
		}
		if committed && p.purge != nil {
			p.purge.committed(fs)
			p.purge.maybePurge(ctx, p.adm)
		}
		if committed && p.cfg.OnCommit != nil {
			p.cfg.OnCommit(n)
		}
	}
}

// errStopped is transact's report that ctx ended and the transaction was
// aborted: Run returns nil.
var errStopped = errors.New("eos: stopped")

// membershipLost reports the errors of a member the group dropped (its
// session expired while it was stalled, say). The client rejoins by
// itself, and the session aborts the transaction of a member that lost
// its partitions: carrying on is how a stalled worker recovers, as a
// Kafka consumer rejoins after a rebalance.
func membershipLost(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.RebalanceInProgress)
}

// pollWake bounds a stateful processor's wait for records, so that the
// stores of newly assigned partitions without new input are restored and
// answer queries.
const pollWake = 500 * time.Millisecond

func (p *Processor) poll(ctx context.Context) kgo.Fetches {
	if !p.stateful {
		return p.sess.PollRecords(ctx, p.cfg.MaxPerTxn)
	}
	pctx, cancel := context.WithTimeout(ctx, pollWake)
	defer cancel()
	return p.sess.PollRecords(pctx, p.cfg.MaxPerTxn)
}

// prepareTasks opens and restores the store of every partition in fs
// and every newly assigned partition that has none or was assigned anew,
// before their records are processed.
func (p *Processor) prepareTasks(ctx context.Context, fs kgo.Fetches) error {
	parts := map[int32]bool{}
	fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if len(ftp.Records) > 0 {
			parts[ftp.Partition] = true
		}
	})
	p.mu.Lock()
	for part := range p.toOpen {
		parts[part] = true
	}
	clear(p.toOpen)
	p.mu.Unlock()
	for part := range parts {
		if err := p.prepareTask(ctx, part); err != nil {
			return err
		}
	}
	return nil
}

func (p *Processor) prepareTask(ctx context.Context, part int32) error {
	p.mu.RLock()
	t := p.tasks[part]
	need := t == nil || t.restore
	p.mu.RUnlock()
	if !need {
		return nil
	}
	if t == nil {
		var err error
		if t, err = openTask(appStateDir(p.cfg.StateDir, p.cfg.Group), p.cfg.Store, part); err != nil {
			return err
		}
		p.mu.Lock()
		p.tasks[part] = t
		p.mu.Unlock()
	}
	// Clear the flag before reading: an assignment during the restore
	// sets it again and the next batch restores once more.
	p.mu.Lock()
	t.restore = false
	p.mu.Unlock()
	if err := p.restoreTask(ctx, t); err != nil {
		p.mu.Lock()
		t.restore = true
		p.mu.Unlock()
		return err
	}
	p.mu.Lock()
	t.serving = p.owned[part] && !t.restore
	p.mu.Unlock()
	return nil
}

// transact runs one transaction over the polled records.
func (p *Processor) transact(ctx context.Context, fs kgo.Fetches) (committed bool, inputs int, err error) {
	if err := p.sess.Begin(); err != nil {
		return false, 0, fmt.Errorf("eos: begin: %w", err)
	}
	// The transaction's own requests run under a context a stop does not
	// cancel: a record whose context is cancelled after it was sent
	// leaves the client waiting on it, and the abort at a stop (or the
	// commit already under way) must complete. The transaction timeout
	// bounds them; past it the coordinator aborts the transaction anyway.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.TxnTimeout)
	defer cancel()
	var (
		mu      sync.Mutex // guards failed and lastLog: produce callbacks run elsewhere
		failed  error
		lastLog = map[int32]int64{} // offset of each task's last changelog record
	)
	fail := func(err error) {
		mu.Lock()
		if failed == nil {
			failed = err
		}
		mu.Unlock()
	}
	used := map[int32]*task{}
	for _, in := range fs.Records() {
		if ctx.Err() != nil {
			break
		}
		var st Store
		if p.stateful {
			p.mu.RLock()
			t := p.tasks[in.Partition]
			p.mu.RUnlock()
			used[in.Partition] = t
			st = txnStore{t}
		}
		outs, err := p.fn(ctx, in, st)
		if err != nil {
			fail(fmt.Errorf("eos: transform %s/%d@%d: %w", in.Topic, in.Partition, in.Offset, err))
			break
		}
		for _, out := range outs {
			p.sess.Produce(tctx, out, func(_ *kgo.Record, err error) {
				if err != nil {
					fail(fmt.Errorf("eos: produce: %w", err))
				}
			})
		}
		inputs++
	}
	// One changelog record per changed key: the last write of the
	// transaction is all a restore needs.
	for part, t := range used {
		for k, c := range t.pending {
			r := &kgo.Record{Topic: p.changelog, Partition: part, Key: []byte(k), Value: c.value}
			p.sess.Produce(tctx, r, func(r *kgo.Record, err error) {
				if err != nil {
					fail(fmt.Errorf("eos: produce changelog: %w", err))
					return
				}
				mu.Lock()
				lastLog[r.Partition] = max(lastLog[r.Partition], r.Offset)
				mu.Unlock()
			})
		}
	}
	defer func() {
		// Committed or not, the buffers are done with: applied below if
		// the transaction committed, dropped otherwise.
		for _, t := range used {
			clear(t.pending)
		}
	}()
	if err := p.sess.Client().Flush(tctx); err != nil {
		fail(fmt.Errorf("eos: flush: %w", err))
	}
	mu.Lock()
	defer mu.Unlock()
	if ctx.Err() != nil {
		// A stop: abort rather than leave the transaction open, where it
		// would hold back the last stable offset of every partition it
		// wrote until the transaction timeout.
		p.metrics.aborted()
		if _, err := p.sess.End(tctx, kgo.TryAbort); err != nil {
			return false, 0, fmt.Errorf("eos: aborting at stop: %w", err)
		}
		return false, 0, errStopped
	}
	if failed != nil {
		// Abort: neither the outputs, the changelog nor the offsets commit.
		p.metrics.aborted()
		if _, err := p.sess.End(tctx, kgo.TryAbort); err != nil {
			return false, 0, errors.Join(failed, err)
		}
		return false, 0, failed
	}
	start := time.Now()
	committed, err = p.sess.End(tctx, kgo.TryCommit)
	if err != nil {
		return false, 0, fmt.Errorf("eos: end: %w", err)
	}
	if !committed {
		p.metrics.aborted()
		return false, 0, nil
	}
	p.metrics.committed(time.Since(start).Seconds())
	for part, t := range used {
		next := t.applied
		if off, ok := lastLog[part]; ok {
			next = off + 1
		}
		if err := t.apply(t.pending, next); err != nil {
			return true, inputs, err
		}
	}
	return true, inputs, nil
}
