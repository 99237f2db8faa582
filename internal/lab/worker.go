package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	bolt "go.etcd.io/bbolt"

	"github.com/weir-broker/weir/pkg/dedup"
)

// Worker roles: the consumer commit strategies and the
// consume-transform-produce worker.
const (
	workerAutoCommit   = "auto-commit"
	workerGreedyCommit = "greedy-auto-commit"
	workerCommitBefore = "commit-before"
	workerCommitAfter  = "commit-after"
	workerDedup        = "dedup"
	workerEOS          = "eos"
	workerStateful     = "eos-stateful"
)

// pollRecords is the batch a consumer worker processes between commits.
const pollRecords = 100

// greedyProcessing is the greedy auto-commit worker's time per record: a
// batch takes longer than the 100 ms auto-commit interval.
const greedyProcessing = 2 * time.Millisecond

// effectsBucket holds a dedup worker's effects, written in the same bbolt
// transaction that records the idempotency key.
var effectsBucket = []byte("lab-effects")

// WorkerConfig configures one worker process of a consumer or end-to-end
// scenario. The lab runs these as `weir lab worker` children so that it
// can kill them with SIGKILL.
type WorkerConfig struct {
	Brokers []string
	Role    string
	Topic   string
	Output  string // eos: the output topic
	Group   string
	// Instance is the static group member id (KIP-345), the same across a
	// worker's restarts so that a restarted worker takes its place at once.
	Instance string
	// Effects is where a consumer worker records what it processed: a file
	// of "partition offset id" lines, or a bbolt file for the dedup role;
	// for the eos-stateful role, its state directory.
	Effects string
	// KillAfter, when positive, makes the worker SIGKILL itself after
	// processing that many records (consumers) or after that many produce
	// batches are written (eos): in the middle of a batch or transaction.
	KillAfter int
	// Status receives progress lines the lab watches: "batch" per produce
	// batch written, "commit" per committed transaction.
	Status io.Writer
	// ClientOpts are the security options of --command-config.
	ClientOpts []kgo.Opt
	// Follow keeps a consumer worker reading as records arrive until it
	// is stopped (SIGTERM) or killed, instead of stopping once the input
	// as it stood at start is committed: the delivery simulator's
	// consumer, reading while the producer writes.
	Follow bool
	// ReadCommitted reads with isolation.level=read_committed.
	ReadCommitted bool
	// KillMidBatch, when set, is a signal after which the worker SIGKILLs
	// itself in the middle of the next batch of two records or more:
	// halfway through it, after processing the first half.
	KillMidBatch <-chan struct{}
	// Effects, when EffectLines is set, are also reported on Status as
	// "effect PARTITION OFFSET ID" lines once applied, so that a watcher
	// sees deliveries as they happen.
	EffectLines bool
}

// brokers is where the worker's clients connect.
func (w WorkerConfig) brokers() brokers { return brokers{addrs: w.Brokers, sec: w.ClientOpts} }

// killSelf ends the process as a crash would.
func killSelf() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

// RunWorker runs a worker until everything in its input is committed, ctx
// ends, or it kills itself.
func RunWorker(ctx context.Context, w WorkerConfig) error {
	if w.Status == nil {
		w.Status = io.Discard
	}
	if isSagaRole(w.Role) {
		if w.Effects == "" {
			return fmt.Errorf("worker role %s needs --effects: its state directory", w.Role)
		}
		// A saga service runs until it is stopped, as a service does.
		if err := runSagaWorker(ctx, w); err != nil && ctx.Err() == nil {
			return err
		}
		return nil
	}
	switch w.Role {
	case workerEOS, workerStateful, workerAutoCommit, workerGreedyCommit, workerCommitBefore, workerCommitAfter, workerDedup:
	default:
		return fmt.Errorf("unknown worker role %q", w.Role)
	}
	if (w.Role == workerEOS || w.Role == workerStateful) && w.Output == "" || w.Role != workerEOS && w.Effects == "" {
		return fmt.Errorf("worker role %s needs --output (eos, eos-stateful) and --effects (consumers: what they processed; eos-stateful: its state directory)", w.Role)
	}
	if w.Follow {
		if w.Role == workerEOS || w.Role == workerStateful {
			return errors.New("--follow applies to consumer roles")
		}
		return runConsumerWorker(ctx, w, nil)
	}
	ends, err := endOffsets(ctx, w.brokers(), w.Topic)
	if err != nil {
		return err
	}
	if w.Role == workerEOS || w.Role == workerStateful {
		return runEOSWorker(ctx, w, ends)
	}
	return runConsumerWorker(ctx, w, ends)
}

func endOffsets(ctx context.Context, bk brokers, topic string) (map[int32]int64, error) {
	cl, err := bk.client(clientTimeouts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	l, err := listEnds(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	m := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { m[o.Partition] = o.Offset })
	return m, nil
}

// allCommitted reports whether the group's committed offsets reached ends.
func allCommitted(ctx context.Context, adm *kadm.Client, group, topic string, ends map[int32]int64) (bool, error) {
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err
	}
	for p, end := range ends {
		if end == 0 {
			continue
		}
		o, ok := offs.Lookup(topic, p)
		if !ok || o.Err != nil || o.At < end {
			return false, nil
		}
	}
	return true, nil
}

// committedPast reports whether the group's committed offset for r's
// partition has passed r while later records of that partition, among
// rest, are still unprocessed: the greedy auto-commit timer has committed
// what the poll returned. It waits up to ten seconds for that,
// so a kill after it lands after a commit however slow the machine, as
// the scenario says; it answers false at once when r is the last record
// of its partition in the batch, where a kill would show nothing.
func committedPast(ctx context.Context, adm *kadm.Client, group string, r *kgo.Record, rest []*kgo.Record) bool {
	later := false
	for _, n := range rest {
		if n.Topic == r.Topic && n.Partition == r.Partition {
			later = true
			break
		}
	}
	if !later {
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			if o, ok := offs.Lookup(r.Topic, r.Partition); ok && o.Err == nil && o.At > r.Offset+1 {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// dataRecords drops control records.
func dataRecords(recs []*kgo.Record) []*kgo.Record {
	out := recs[:0:0]
	for _, r := range recs {
		if !r.Attrs.IsControl() {
			out = append(out, r)
		}
	}
	return out
}

// effectSink records processed records.
type effectSink interface {
	// apply reports whether the effect was applied (a dedup store skips
	// a record it has seen).
	apply(r *kgo.Record) (bool, error)
	close() error
}

type fileSink struct{ f *os.File }

// apply writes one line with one write call: a SIGKILL cannot leave
// half of it, and the page cache keeps it across the kill.
func (s fileSink) apply(r *kgo.Record) (bool, error) {
	_, err := fmt.Fprintf(s.f, "%d %d %d\n", r.Partition, r.Offset, parseID(r.Value))
	return err == nil, err
}
func (s fileSink) close() error { return s.f.Close() }

// dedupSink applies each record's effect through the dedup store, keyed by
// the record's id: the effect and the key commit in one transaction.
type dedupSink struct{ store *dedup.BoltStore }

func (s dedupSink) apply(r *kgo.Record) (bool, error) {
	id := parseID(r.Value)
	return s.store.ProcessTx(strconv.FormatInt(id, 10), func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(effectsBucket)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, seq), fmt.Appendf(nil, "%d %d %d", r.Partition, r.Offset, id))
	})
}
func (s dedupSink) close() error { return s.store.Close() }

func runConsumerWorker(ctx context.Context, w WorkerConfig, ends map[int32]int64) error {
	var sink effectSink
	if w.Role == workerDedup {
		st, err := dedup.Open(w.Effects, dedup.Options{})
		if err != nil {
			return err
		}
		sink = dedupSink{st}
	} else {
		f, err := os.OpenFile(w.Effects, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		sink = fileSink{f}
	}
	defer sink.close()
	opts := w.brokers().opts(append([]kgo.Opt{
		kgo.ConsumerGroup(w.Group),
		kgo.ConsumeTopics(w.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.InstanceID(w.Instance),
		kgo.SessionTimeout(6 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.KeepControlRecords(),
	}, clientTimeouts()...)...)
	if w.Follow {
		// Records trickle in: wait for a few before answering, so that a
		// batch holds several and can be cut in the middle.
		opts = append(opts, kgo.FetchMinBytes(2000), kgo.FetchMaxWait(500*time.Millisecond))
	}
	autoCommit := w.Role == workerAutoCommit || w.Role == workerGreedyCommit
	switch {
	case w.Role == workerGreedyCommit:
		opts = append(opts, kgo.AutoCommitInterval(100*time.Millisecond), kgo.GreedyAutoCommit())
	case autoCommit:
		opts = append(opts, kgo.AutoCommitInterval(100*time.Millisecond))
	default:
		opts = append(opts, kgo.DisableAutoCommit())
	}
	if w.ReadCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	processed := 0
	killArmed := false
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollRecords(pctx, pollRecords)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("fetch: %w", ferr)
		}
		// Control records (transaction markers) come back too, so that the
		// offsets committed pass them: a group whose input ends with a
		// marker is then seen to have committed everything. Only data
		// records are processed.
		all := fs.Records()
		recs := dataRecords(all)
		if !killArmed && w.KillMidBatch != nil {
			select {
			case <-w.KillMidBatch:
				killArmed = true
			default:
			}
		}
		if len(recs) == 0 && len(all) > 0 {
			if !autoCommit {
				if err := cl.CommitRecords(ctx, all...); err != nil {
					return fmt.Errorf("commit: %w", err)
				}
			}
			continue
		}
		if len(recs) == 0 {
			if w.Follow {
				continue
			}
			if autoCommit {
				if err := cl.CommitUncommittedOffsets(ctx); err != nil {
					return err
				}
			}
			done, err := allCommitted(ctx, adm, w.Group, w.Topic, ends)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
			continue
		}
		if w.Role == workerCommitBefore {
			if err := cl.CommitRecords(ctx, all...); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
		for i, r := range recs {
			if w.Role == workerGreedyCommit {
				// Processing that takes a while, as it does in the
				// applications greedy committing hurts: the timer fires
				// in the middle of a batch, as it would with librdkafka's
				// offsets stored when consume() hands a message over.
				time.Sleep(greedyProcessing)
			}
			applied, err := sink.apply(r)
			if err != nil {
				return err
			}
			if applied && w.EffectLines {
				fmt.Fprintf(w.Status, "effect %d %d %d\n", r.Partition, r.Offset, parseID(r.Value))
			}
			processed++
			if killArmed && len(recs) >= 2 && i == (len(recs)-1)/2 {
				killSelf()
			}
			if w.KillAfter > 0 && processed >= w.KillAfter {
				if w.Role != workerGreedyCommit || committedPast(ctx, adm, w.Group, r, recs[i+1:]) {
					killSelf()
				}
			}
		}
		if w.Role == workerCommitAfter || w.Role == workerDedup {
			if err := cl.CommitRecords(ctx, all...); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
	}
}
