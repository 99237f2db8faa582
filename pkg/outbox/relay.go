package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Crash points: where a test makes the relay kill itself (see
// Relay.crashAt).
const (
	crashBeforePublish   = "before-publish"   // batch claimed in the database, nothing produced
	crashBeforeCommit    = "before-commit"    // batch produced in an open Kafka transaction
	crashBeforeMarkSent  = "before-mark-sent" // Kafka transaction committed, rows still claimed
	crashBeforeReconcile = "before-reconcile" // at start: fenced and progress read, table not yet reconciled
	crashBeforeFence     = "before-fence"     // at start: incarnation registered, Kafka not yet fenced
)

// Relay publishes the outbox's events to Kafka, each exactly once.
type Relay struct {
	cfg   RelayConfig
	store store
	log   *slog.Logger

	published atomic.Int64 // events this relay committed to Kafka
	batches   atomic.Int64 // batches this relay committed to Kafka

	// crashAt, when set, is called at each crash point with the batch in
	// hand. Only tests set it, to kill the process there.
	crashAt func(point string, b *batch)
}

// Stats counts what a relay has done since it was created.
type Stats struct {
	Events  int64 // events committed to Kafka
	Batches int64 // Kafka transactions committed
}

// NewRelay checks cfg and returns a relay reading the outbox through pool.
// Nothing happens until Run.
func NewRelay(pool *pgxpool.Pool, cfg RelayConfig) (*Relay, error) {
	if pool == nil {
		return nil, errors.New("outbox: a connection pool is required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n, _ := tableNames(cfg.Table) // validated by withDefaults
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Relay{
		cfg:   cfg,
		store: store{pool: pool, n: n, relayID: cfg.RelayID},
		log:   logger.With("relay", cfg.RelayID),
	}, nil
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{Events: r.published.Load(), Batches: r.batches.Load()}
}

// Run reconciles what an earlier incarnation of this relay id left
// claimed, then publishes batches until ctx is done, and returns nil. A
// batch in flight when ctx ends is finished first (bounded by the
// transaction timeout), so a clean stop leaves no row claimed.
//
// Run returns an error if the first start fails (bad table, unreachable
// database, a progress topic that is not compacted) or with ErrFenced if
// another process took over the relay id. After other failures (a broker
// or database hiccup) it logs, waits a poll interval (at least a second)
// and starts over, reconciling again. A Kafka fence the database does not
// confirm (see the package doc) also starts it over, up to three times in
// a row; then it returns ErrFenced, as a relay with its transactional id
// runs against another database or table.
func (r *Relay) Run(ctx context.Context) error {
	started := false
	kafkaFences := 0 // sessions in a row fenced in Kafka but not in the database
	for {
		var inc int64
		began := time.Now()
		err := r.session(ctx, &started, &inc)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			continue
		}
		fenced, kafkaOnly, err := r.judgeFailure(ctx, inc, err)
		if kafkaOnly {
			// A relay with our transactional id that our database does
			// not know (same relay id, another database or outbox
			// table) would fence us each time we fence it: give up
			// after a few rounds rather than fight it for ever.
			// Fences far apart (a timed-out transaction now and then)
			// are not such a fight.
			if time.Since(began) > kafkaFenceWindow*r.cfg.TxnTimeout {
				kafkaFences = 0
			}
			if kafkaFences++; kafkaFences >= maxKafkaOnlyFences {
				return fmt.Errorf("%w: fenced in Kafka %d times in a row while the database names this relay current: "+
					"another relay with transactional id %s%s runs against another database or outbox table, "+
					"or batches outlive the transaction timeout %v: %w",
					ErrFenced, kafkaFences, TransactionalIDPrefix, r.cfg.RelayID, r.cfg.TxnTimeout, err)
			}
			r.log.Warn("outbox relay fenced in Kafka but current in the database; starting over", "incarnation", inc, "err", err)
			if !sleep(ctx, max(r.cfg.PollInterval, time.Second)) {
				return nil
			}
			continue
		}
		kafkaFences = 0
		var conflict modeConflict
		if !started || fenced || errors.As(err, &conflict) {
			return err
		}
		r.log.Warn("outbox relay restarting", "err", err)
		if !sleep(ctx, max(r.cfg.PollInterval, time.Second)) {
			return nil
		}
	}
}

const (
	// maxKafkaOnlyFences is how many sessions in a row Run starts over
	// after a Kafka fence that the database does not confirm.
	maxKafkaOnlyFences = 3
	// kafkaFenceWindow, in transaction timeouts: a session that lasted
	// longer before such a fence starts the count again.
	kafkaFenceWindow = 5
)

// judgeFailure says whether the failure err of incarnation inc's session
// means that the relay is fenced (it then returns err wrapping ErrFenced)
// or that only Kafka fenced it while the database still names inc.
//
// The database, not Kafka, says who is current: every incarnation
// registers there before it touches Kafka. A failure caused by a
// successor's start (its InitProducerId aborting our transaction shows up
// as more than one error code) must not make us start again and fence the
// successor in turn: if the database names a newer incarnation, we are
// fenced. But Kafka fences us also when a stale process of our relay id,
// registered before us and stalled since, finally calls InitProducerId
// (it then fails its own incarnation check and stops), or when the
// coordinator aborts a transaction that outlived its timeout: if the
// database still names us, only Kafka fenced us. If the database cannot
// tell, a Kafka fence is taken at its word.
func (r *Relay) judgeFailure(ctx context.Context, inc int64, err error) (fenced, kafkaOnly bool, _ error) {
	switch {
	case errors.Is(err, ErrFenced):
		return true, false, err
	case isFenced(err):
		if inc != 0 {
			if cur, cerr := r.store.currentIncarnation(ctx); cerr == nil && cur == inc {
				return false, true, err
			}
		}
		return true, false, fmt.Errorf("%w: %w", ErrFenced, err)
	case inc != 0:
		if cur, cerr := r.store.currentIncarnation(ctx); cerr == nil && cur != inc {
			return true, false, fmt.Errorf("%w (incarnation %d, current %d): %w", ErrFenced, inc, cur, err)
		}
	}
	return false, false, err
}

// session is one incarnation: start, reconcile, then claim, publish and
// mark batches until ctx ends or something fails.
func (r *Relay) session(ctx context.Context, started *bool, incp *int64) error {
	st, err := r.start(ctx, incp)
	defer st.mark.release(ctx)
	if st.cl != nil {
		defer st.cl.Close()
	}
	if err != nil {
		return err
	}
	inc, token, cl, skipped, rec := st.inc, st.token, st.cl, st.skipped, st.rec
	*started = true
	if rec.restored != "" {
		r.log.Warn("outbox database restored from a backup: progress from before the restore ignored, claimed rows released and published again", "why", rec.restored, "released", rec.released)
	}
	r.log.Info("outbox relay started", "incarnation", inc, "reconciled_sent", rec.sent, "released", rec.released)

	// done is the batch last committed to Kafka; the next claim marks it
	// sent in the same database transaction.
	var done *batch
	for {
		if ctx.Err() != nil {
			if done == nil {
				return nil
			}
			// Settle the last batch before stopping, so that a clean stop
			// leaves nothing claimed.
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.TxnTimeout)
			defer cancel()
			_, err := r.store.claim(mctx, inc, done, 0)
			return err
		}
		// Marking the last batch must not be cut short by ctx, or a
		// clean stop would leave its rows claimed.
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if done != nil {
			cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), r.cfg.TxnTimeout)
		}
		b, err := r.store.claim(cctx, inc, done, r.cfg.BatchSize)
		cancel()
		if err != nil {
			return err
		}
		done = nil
		if len(b.events) == 0 {
			if !sleep(ctx, r.cfg.PollInterval) {
				return nil
			}
			continue
		}
		// The batch is claimed: publish it even if ctx ends now, once
		// the mode mark is known to be held still (see held).
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.TxnTimeout)
		if err := st.mark.held(bctx); err != nil {
			cancel()
			return err
		}
		err = r.publish(bctx, cl, inc, token, b, skipped)
		cancel()
		if err != nil {
			return err
		}
		r.batches.Add(1)
		r.log.Info("outbox batch published", "batch", b.number, "events", len(b.events), "first_id", b.events[0].id)
		r.hook(crashBeforeMarkSent, b)
		done = b
	}
}

// opened is what a new incarnation has once it reconciled.
type opened struct {
	inc     int64
	token   string
	cl      *kgo.Client // the transactional client; the caller closes it
	skipped *skips
	rec     reconciled
	mark    *pollingMark // held until the session ends; the caller releases it
}

// start is steps a to d of the package doc: register a new incarnation,
// fence the previous one in Kafka, read the progress topic and reconcile
// the table. *incp is set as soon as the incarnation is registered.
func (r *Relay) start(ctx context.Context, incp *int64) (opened, error) {
	var st opened
	var err error
	if err := r.store.checkColumns(ctx); err != nil {
		return st, err
	}
	// The mode mark first, then the look for the other mode's (see
	// modemark.go).
	if st.mark, err = r.store.markPolling(ctx); err != nil {
		return st, err
	}
	if err := r.store.checkNoCDCRelay(ctx); err != nil {
		return st, err
	}
	inc, token, err := r.store.startIncarnation(ctx)
	if err != nil {
		return st, err
	}
	st.inc, *incp = inc, inc
	if st.cl, err = kgo.NewClient(r.clientOpts()...); err != nil {
		return st, fmt.Errorf("outbox: kafka client: %w", err)
	}
	if err := ensureProgressTopic(ctx, st.cl, r.cfg.ProgressTopic); err != nil {
		return st, err
	}
	r.hook(crashBeforeFence, &batch{})
	fence, err := writeFence(ctx, st.cl, r.cfg.ProgressTopic, r.cfg.RelayID, token, inc)
	if err != nil {
		return st, err
	}
	last, skipped, err := readProgress(ctx, r.cfg, token, fence)
	if err != nil {
		return st, err
	}
	r.hook(crashBeforeReconcile, &batch{})
	if st.rec, err = r.store.reconcile(ctx, inc, token, last); err != nil {
		return st, err
	}
	if st.rec.token != token {
		// Skips name event ids of the history the old token stood for.
		skipped = &skips{}
	}
	st.token, st.skipped = st.rec.token, skipped
	return st, nil
}

// Release settles the rows of a relay id that will not run again, so
// that relays with other ids publish them: it does what a restart of that
// relay does before claiming anything (fence its earlier incarnations in
// the database and in Kafka, read its last committed batch from the
// progress topic, mark that batch's rows sent and put its other claimed
// rows back to pending), then returns how many rows it marked sent and
// released. A process of the relay id that still runs is fenced and
// stops. Releasing rows by hand instead would publish again a batch that
// committed before its rows were marked.
func (r *Relay) Release(ctx context.Context) (sent, released int64, err error) {
	var inc int64
	st, err := r.start(ctx, &inc)
	defer st.mark.release(ctx)
	if st.cl != nil {
		defer st.cl.Close()
	}
	if err != nil {
		return 0, 0, err
	}
	return st.rec.sent, st.rec.released, nil
}

// clientOpts are the options of the relay's transactional Kafka client.
func (r *Relay) clientOpts() []kgo.Opt {
	return transactionalClientOpts(r.cfg, TransactionalIDPrefix+r.cfg.RelayID)
}

// transactionalClientOpts are the options of a relay's transactional
// Kafka client with transactional id txnID. cfg.ClientOpts may tune the
// first options but come before those the exactly-once argument rests
// on, so that they cannot replace them (later options win).
func transactionalClientOpts(cfg RelayConfig, txnID string) []kgo.Opt {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		// A produce that cannot complete fails the batch rather than
		// hanging; the transaction then aborts and the rows are retried.
		kgo.RecordDeliveryTimeout(cfg.TxnTimeout / 2),
		kgo.ProducerLinger(0),
	}, cfg.ClientOpts...)
	return append(opts,
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(cfg.TxnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(partitioner{progressTopic: cfg.ProgressTopic, events: cfg.Partitioner}),
	)
}

// publish produces batch b and its progress record in one Kafka
// transaction and commits it. Events skipped by hand are left out; the
// progress record names them with the others, so that they are marked
// sent.
func (r *Relay) publish(ctx context.Context, cl *kgo.Client, inc int64, token string, b *batch, skipped *skips) error {
	r.hook(crashBeforePublish, b)
	recs := make([]*kgo.Record, 0, len(b.events)+1)
	for _, e := range b.events {
		if skipped.event(e) {
			r.log.Warn("outbox event skipped as a skip record in the progress topic says; its row is marked sent unpublished", "id", e.id, "topic", e.topic)
			continue
		}
		recs = append(recs, eventRecord(e))
	}
	events := int64(len(recs))
	pr, err := progressRecord(r.cfg.ProgressTopic, r.cfg.RelayID, token, inc, b)
	if err != nil {
		return err
	}
	recs = append(recs, pr)
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("outbox: begin transaction: %w", err)
	}
	if rs := cl.ProduceSync(ctx, recs...); rs.FirstErr() != nil {
		if id, topic, why, ok := refusedEvent(rs); ok {
			r.log.Warn("outbox event refused by Kafka; its batch is retried until the cause is fixed, the row deleted, or the event skipped",
				"id", id, "topic", topic, "err", why,
				"skip", fmt.Sprintf("weir outbox skip --table %s --relay-id %s --id %d", r.cfg.Table, r.cfg.RelayID, id))
		}
		return errors.Join(fmt.Errorf("outbox: publish batch %d: %w", b.number, rs.FirstErr()), abort(ctx, cl))
	}
	r.hook(crashBeforeCommit, b)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		// The outcome may be unknown; the next incarnation learns it
		// from the progress topic.
		return fmt.Errorf("outbox: commit batch %d: %w", b.number, err)
	}
	r.published.Add(events) // skipped events are not counted
	return nil
}

// eventRecord is the Kafka record of an outbox event.
func eventRecord(e claimed) *kgo.Record {
	keys := make([]string, 0, len(e.headers))
	for k := range e.headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	hs := make([]kgo.RecordHeader, 0, len(keys)+2)
	for _, k := range keys {
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(e.headers[k])})
	}
	hs = append(hs, kgo.RecordHeader{Key: EventIDHeader, Value: []byte(strconv.FormatInt(e.id, 10))})
	if e.uuid != "" {
		hs = append(hs, kgo.RecordHeader{Key: EventUUIDHeader, Value: []byte(e.uuid)})
	}
	return &kgo.Record{Topic: e.topic, Key: e.key, Value: e.payload, Headers: hs}
}

func (r *Relay) hook(point string, b *batch) {
	if r.crashAt != nil {
		r.crashAt(point, b)
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
