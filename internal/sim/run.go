package sim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
	"github.com/weir-broker/weir/internal/partition"
	"github.com/weir-broker/weir/internal/producer"
)

const dir = "/t"

// errPowerLost is what every file-system operation returns once the
// simulated machine has lost power in the middle of an action.
var errPowerLost = errors.New("power lost")

// runner executes a list of actions against a real partition and checks
// the invariants after each.
type runner struct {
	fs *logtest.MemFS
	p  *partition.Partition

	// A replicated run has a follower f on its own machine's file
	// system ffs (replica.go); the leader's epoch goes up at every
	// reopen, as an election after a restart makes it.
	replicated bool
	ffs        *logtest.MemFS
	f          *partition.Partition
	epoch      int32
	opens      int

	nowMs     int64
	log       []mbatch           // what the partition accepted, in offset order
	seq       map[int64]int32    // the next sequence of each producer
	sent      map[int64][]mbatch // each idempotent producer's last batches, for retries
	decided   map[int64]bool     // a transaction's outcome, from its first marker until that is durable
	markerEnd map[int64]int64    // the offset after a decided transaction's marker
	nextVal   int

	lastLSO  int64
	acked    int64   // the highest HW seen: every batch below it must survive
	attempt  *mbatch // the batch of the action in progress, for a crash mid-append
	inflight int64   // the pid of a transactional batch being appended, or -1

	cur        action
	midErr     error  // a violation seen at a mid-operation point
	duringRead func() // run once, inside the next read of a segment
	ops        int
	crashed    *logtest.MemFS // the file system a power loss left, mid-action
	dead       bool

	step  int
	trace []string
}

func newRunner() *runner {
	r := &runner{
		fs:        logtest.NewMemFS(),
		seq:       map[int64]int32{},
		sent:      map[int64][]mbatch{},
		decided:   map[int64]bool{},
		markerEnd: map[int64]int64{},
		nowMs:     1_700_000_000_000,
		inflight:  -1,
	}
	r.fs.SetClock(r.now)
	return r
}

func (r *runner) now() time.Time { return time.UnixMilli(r.nowMs) }

// violation is a broken invariant.
type violation struct {
	step int
	msg  string
}

func (v *violation) Error() string { return fmt.Sprintf("step %d: %s", v.step, v.msg) }

func (r *runner) failf(format string, args ...any) error {
	return &violation{step: r.step, msg: fmt.Sprintf(format, args...)}
}

// run executes actions and returns the first violation.
func run(actions []action) ([]string, error) { return runWith(actions, (*runner).do) }

// runReplicated is run with a follower.
func runReplicated(actions []action) ([]string, error) {
	return runWithReplicas(actions, (*runner).do, true)
}

// runWith is run with do carrying out each action.
func runWith(actions []action, do func(*runner, action) error) (trace []string, err error) {
	return runWithReplicas(actions, do, false)
}

// runWithReplicas is runWith, with a follower when replicated.
func runWithReplicas(actions []action, do func(*runner, action) error, replicated bool) (trace []string, err error) {
	r := newRunner()
	r.replicated = replicated
	defer func() {
		if p := recover(); p != nil {
			err = r.failf("panic: %v", p)
		}
		trace = r.trace
	}()
	if err := r.open(); err != nil {
		return r.trace, err
	}
	if err := r.openFollower(); err != nil {
		return r.trace, err
	}
	defer r.closeFollower()
	for i, a := range actions {
		r.step = i
		r.trace = append(r.trace, a.String())
		if err := do(r, a); err != nil {
			return r.trace, err
		}
		if err := r.check(); err != nil {
			return r.trace, err
		}
		if err := r.checkReplicas(); err != nil {
			return r.trace, err
		}
	}
	return r.trace, nil
}

func (r *runner) config() wlog.Config {
	cfg := wlog.DefaultConfig()
	cfg.FS = r.fs
	cfg.Now = r.now
	cfg.SegmentBytes = 400
	cfg.IndexIntervalBytes = 64
	cfg.RetentionMs, cfg.RetentionBytes = -1, -1
	cfg.Logger = quiet
	return cfg
}

func (r *runner) options() partition.Options {
	return partition.Options{ManualFlush: true, SnapshotIntervalBytes: 500, Yield: r.yield}
}

// open opens the partition on r.fs, as a broker starting does; in a
// replicated run, as the leader of a new epoch with the follower in its
// ISR.
func (r *runner) open() error {
	r.fs.SetFault(r.fault)
	isr := []int32{0}
	if r.replicated {
		isr = []int32{0, 1}
		if r.opens > 0 {
			r.epoch++
			// The high watermark starts over from the log start: what
			// the follower holds is unknown until it fetches.
			r.lastLSO = 0
		}
	}
	r.opens++
	p, err := partition.OpenWith("t", 0, dir, r.config(), r.epoch, isr, r.options())
	if err != nil {
		return r.failf("open: %v", err)
	}
	r.p = p
	return nil
}

// fault counts the action's mutating file-system operations and loses
// power at the chosen one: the file system is taken as it would be found,
// and every operation from then on fails.
func (r *runner) fault(op logtest.Op, path string) error {
	if r.dead {
		return errPowerLost
	}
	if op == logtest.OpRead && r.duringRead != nil && strings.HasSuffix(path, ".log") {
		f := r.duringRead
		r.duringRead = nil
		f()
	}
	if r.cur.crashAt == 0 || op == logtest.OpRead || op == logtest.OpReadDir {
		return nil
	}
	r.ops++
	if r.ops == r.cur.crashAt {
		r.acked = max(r.acked, r.p.HighWatermark())
		r.crashed = r.fs.Crash(keeper(r.cur.keep))
		r.dead = true
		return errPowerLost
	}
	return nil
}

// keeper decides, from seed and the path alone, how much of a file's
// unsynced tail a power loss keeps: nothing, all of it, or a cut at some
// byte.
func keeper(seed uint64) func(path string, n int) int {
	return func(path string, n int) int {
		h := fnv.New64a()
		h.Write([]byte(path))
		x := h.Sum64() ^ seed
		switch x % 3 {
		case 0:
			return 0
		case 1:
			return n
		}
		return int((x / 3) % uint64(n+1))
	}
}

// yield runs at the partition's mid-operation points, with its append
// lock held: what another goroutine could do there without the lock.
func (r *runner) yield(at partition.Point) {
	if !r.cur.syncMid || r.dead {
		return
	}
	_ = r.p.Sync()
	err := r.checkStable(r.inflight)
	if lso := r.p.LastStableOffset(); err == nil && lso < r.lastLSO {
		err = r.failf("last stable offset moved back from %d to %d mid-operation", r.lastLSO, lso)
	}
	if err != nil && r.midErr == nil {
		r.midErr = err
	}
}

func (r *runner) do(a action) error {
	r.cur, r.ops, r.attempt, r.inflight = a, 0, nil, -1
	defer func() { r.cur = action{} }()
	r.nowMs += 1 + int64(a.keep%7)
	var err error
	switch a.kind {
	case actPlain:
		err = r.produce(a, -1, false)
	case actIdem:
		err = r.produce(a, a.pid, false)
	case actTxn:
		err = r.produce(a, a.pid, true)
	case actRetry:
		err = r.retry(a)
	case actEnd:
		err = r.end(a)
	case actFlush:
		err = r.expectOK("flush", r.p.Flush())
	case actSync:
		err = r.expectOK("sync", r.p.Sync())
	case actDelete:
		hw, start := r.p.HighWatermark(), r.p.LogStartOffset()
		offset := start + int64(a.frac*float64(hw-start))
		_, derr := r.p.DeleteRecordsBefore(offset)
		err = r.expectOK("delete records", derr)
	case actRetention:
		cfg := r.config()
		cfg.RetentionBytes = int64(a.frac * float64(r.p.Size()))
		r.p.SetConfig(cfg)
		_, rerr := r.p.EnforceRetention()
		r.p.SetConfig(r.config())
		err = r.expectOK("retention", rerr)
	case actRestart:
		if err := r.expectOK("close", r.p.Close()); err != nil {
			return err
		}
		if r.crashed == nil {
			if err := r.open(); err != nil {
				return err
			}
			return r.reopened(false)
		}
	case actCrash:
		r.acked = max(r.acked, r.p.HighWatermark())
		r.crashed = r.fs.Crash(keeper(a.keep))
	case actFetch:
		err = r.fetch(fetchBytes(a))
	case actDiverge:
		err = r.diverge(a)
	}
	if err == nil {
		err = r.midErr
	}
	if err != nil {
		return err
	}
	if r.crashed != nil {
		return r.recover()
	}
	r.acked = max(r.acked, r.p.HighWatermark())
	return nil
}

// expectOK passes an error only when power was lost under the action.
func (r *runner) expectOK(what string, err error) error {
	if err != nil && !r.dead {
		return r.failf("%s: %v", what, err)
	}
	return nil
}

func (r *runner) value() []byte {
	r.nextVal++
	return fmt.Appendf(nil, "v%d", r.nextVal)
}

// produce appends the next batch of pid (-1: a plain producer).
func (r *runner) produce(a action, pid int64, txn bool) error {
	spec := batch.Spec{Timestamp: r.nowMs, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	var recs []batch.Record
	for range a.records {
		recs = append(recs, batch.Record{Value: r.value()})
	}
	if pid >= 0 {
		spec.ProducerID, spec.ProducerEpoch, spec.BaseSequence = pid, 0, r.seq[pid]
	}
	if txn {
		if err := r.settle(pid); err != nil || r.dead {
			return err
		}
		spec.Attributes = batch.AttrTransactional
		r.inflight = pid
	}
	b := batch.Build(spec, recs)
	m, err := r.appendBatch(b)
	if err != nil || m == nil {
		return err
	}
	if pid >= 0 {
		r.seq[pid] = m.lastSeq + 1
		if !txn {
			r.sent[pid] = append(r.sent[pid], *m)
			if len(r.sent[pid]) > producer.MaxBatches+1 {
				r.sent[pid] = r.sent[pid][1:]
			}
		}
	}
	return nil
}

// retry sends again one of an idempotent producer's last batches.
func (r *runner) retry(a action) error {
	sent := r.sent[a.pid]
	if len(sent) == 0 {
		return nil
	}
	orig := sent[max(len(sent)-1-a.back, 0)]
	spec := batch.Spec{Timestamp: orig.ts, ProducerID: orig.pid, ProducerEpoch: 0, BaseSequence: orig.firstSeq}
	var recs []batch.Record
	for _, v := range orig.values {
		recs = append(recs, batch.Record{Value: []byte(v)})
	}
	_, err := r.appendBatch(batch.Build(spec, recs))
	return err
}

// appendBatch appends b and checks the partition's answer against the
// model's expectation; it returns the batch as remembered when appended.
func (r *runner) appendBatch(b []byte) (*mbatch, error) {
	h, err := batch.Validate(b)
	if err != nil {
		return nil, r.failf("built an invalid batch: %v", err)
	}
	recs, _ := batch.Records(b)
	m := mbatch{pid: h.ProducerID, txn: h.Transactional(), firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), ts: h.MaxTimestamp}
	for _, rec := range recs {
		m.values = append(m.values, string(rec.Value))
	}
	start, end := r.p.LogStartOffset(), r.p.LogEndOffset()
	want, orig := expectAppend, (*mbatch)(nil)
	if h.Idempotent() {
		want, orig = expect(r.log, start, h.ProducerID, h.BaseSequence, h.LastSequence())
	}
	m.base, m.last = end, end+int64(h.LastOffsetDelta)
	r.attempt = &m
	base, dup, err := r.p.Append(b, h, r.nowMs)
	if r.dead {
		return nil, nil
	}
	switch {
	case want == expectDuplicate:
		if err != nil || dup == nil || dup.BaseOffset != orig.base {
			return nil, r.failf("retry of the batch at %d: got dup %+v err %v, want its original offsets", orig.base, dup, err)
		}
		return nil, nil
	case want == expectOutOfOrder:
		if !errors.Is(err, producer.ErrOutOfOrder) {
			return nil, r.failf("batch seq %d of pid %d: got base %d dup %+v err %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", h.BaseSequence, h.ProducerID, base, dup, err)
		}
		return nil, nil
	case err != nil || dup != nil:
		return nil, r.failf("batch seq %d of pid %d: dup %+v err %v, want it appended", h.BaseSequence, h.ProducerID, dup, err)
	case base != end:
		return nil, r.failf("batch appended at %d, want the log end %d", base, end)
	}
	return r.accept(m)
}

// accept adds an appended batch to the model log; every value is stored
// once while it is readable.
func (r *runner) accept(m mbatch) (*mbatch, error) {
	start := r.p.LogStartOffset()
	v := viewOf(r.log, start)
	for _, val := range m.values {
		if off, ok := v.offset[val]; ok && off >= start {
			return nil, r.failf("record %s stored twice: at %d and again at %d", val, off, m.base)
		}
	}
	r.log = append(r.log, m)
	return &r.log[len(r.log)-1], nil
}

// end writes pid's transaction marker, as the coordinator does once the
// outcome is durable: the outcome is decided from then on. The marker
// becomes durable at once or, as when the flusher is slow, only before
// the producer's next transaction begins (the coordinator waits for it).
func (r *runner) end(a action) error {
	pid, commit := a.pid, a.commit
	if err := r.settle(pid); err != nil || r.dead {
		return err // the previous transaction must be complete first
	}
	v := viewOf(r.log, r.p.LogStartOffset())
	if v.open[pid] == nil && !commit {
		// An abort of a transaction whose data never arrived: a marker
		// all the same, as the coordinator writes one to every partition
		// added.
	} else if v.open[pid] == nil {
		return nil
	}
	r.decided[pid] = commit
	if err := r.writeMarker(pid, commit); err != nil || r.dead {
		return err
	}
	r.markerEnd[pid] = r.p.LogEndOffset()
	if a.frac < 0.5 {
		return r.settle(pid)
	}
	return nil
}

// settle waits for pid's decided marker to be durable; the coordinator
// answers the producer's next transaction only then.
func (r *runner) settle(pid int64) error {
	if _, ok := r.decided[pid]; !ok {
		return nil
	}
	for round := 0; r.p.HighWatermark() < r.markerEnd[pid]; round++ {
		if round == 6 {
			return r.failf("marker of pid %d ending at %d never below the high watermark %d", pid, r.markerEnd[pid], r.p.HighWatermark())
		}
		if err := r.expectOK("sync marker", r.p.Sync()); err != nil || r.dead {
			return err
		}
		if !r.replicated {
			continue
		}
		// Durable on the leader; on the follower once it fetched the
		// marker, fsynced it and fetched again.
		if err := r.fetch(1 << 20); err != nil || r.dead {
			return err
		}
	}
	delete(r.decided, pid)
	return nil
}

// complete writes a decided transaction's marker again after a crash
// took it, as the coordinator's recovery does, and waits for it.
func (r *runner) complete(pid int64, commit bool) error {
	if err := r.writeMarker(pid, commit); err != nil || r.dead {
		return err
	}
	r.markerEnd[pid] = r.p.LogEndOffset()
	return r.settle(pid)
}

func (r *runner) writeMarker(pid int64, commit bool) error {
	end := r.p.LogEndOffset()
	m := mbatch{pid: pid, control: true, commit: commit, base: end, last: end, firstSeq: -1, lastSeq: -1}
	r.attempt = &m
	next, err := r.p.AppendMarker(pid, 0, commit, 0)
	if r.dead {
		return nil
	}
	if err != nil || next != end+1 {
		return r.failf("marker of pid %d: end %d err %v, want it at %d", pid, next, err, end)
	}
	_, err = r.accept(m)
	return err
}

// recover reopens the partition from what a power loss left and checks
// that the log is a prefix of what was written holding every batch below
// the high watermark, then finishes the decided transactions whose
// markers were lost, as the coordinator's recovery does.
func (r *runner) recover() error {
	r.fs, r.crashed, r.dead = r.crashed, nil, false
	r.cur = action{}
	if err := r.open(); err != nil {
		return err
	}
	start, end := r.p.LogStartOffset(), r.p.LogEndOffset()
	if end < r.acked {
		return r.failf("recovered log ends at %d, below the high watermark %d acknowledged before the crash", end, r.acked)
	}
	got, err := r.scan(start, end)
	if err != nil {
		return err
	}
	if r.attempt != nil && r.attempt.base >= lastEnd(r.log) && len(got) > 0 && got[len(got)-1].base == r.attempt.base {
		r.log = append(r.log, *r.attempt) // the action's batch reached the disk before power was lost
	}
	r.attempt = nil
	keep := 0
	for keep < len(r.log) && r.log[keep].base < end {
		keep++
	}
	r.log = r.log[:keep]
	want := make([]mbatch, 0, len(r.log))
	for _, b := range r.log {
		if b.last >= start {
			want = append(want, b)
		}
	}
	if err := sameBatches(got, want); err != nil {
		return r.failf("recovered log is not a prefix of what was written: %v", err)
	}
	for pid := range r.sent {
		if s, ok := nextSeq(r.log, pid); ok {
			r.seq[pid] = s
		}
	}
	for _, pid := range txnPIDs {
		if s, ok := nextSeq(r.log, pid); ok {
			r.seq[pid] = s
		}
	}
	r.acked = max(r.acked, r.p.HighWatermark())
	if err := r.reopened(true); err != nil {
		return err
	}
	v := viewOf(r.log, start)
	for _, pid := range txnPIDs {
		if commit, ok := r.decided[pid]; ok {
			if v.open[pid] == nil {
				delete(r.decided, pid) // its marker survived
				continue
			}
			if err := r.complete(pid, commit); err != nil {
				return err
			}
		}
	}
	return nil
}

func lastEnd(log []mbatch) int64 {
	if len(log) == 0 {
		return 0
	}
	return log[len(log)-1].last + 1
}

// scan reads every batch in [from, to) as stored.
func (r *runner) scan(from, to int64) ([]mbatch, error) { return r.scanOf(r.p, from, to) }

// scanOf is scan of another partition.
func (r *runner) scanOf(p *partition.Partition, from, to int64) ([]mbatch, error) {
	var out []mbatch
	for from < to {
		data, err := p.Read(from, to, 1<<20)
		if err != nil {
			return nil, r.failf("read at %d: %v", from, err)
		}
		if len(data) == 0 {
			return nil, r.failf("read at %d returned nothing before %d", from, to)
		}
		got, err := parseBatches(data)
		if err != nil {
			return nil, r.failf("stored batches at %d: %v", from, err)
		}
		out = append(out, got...)
		from = got[len(got)-1].last + 1
	}
	return out, nil
}

// parseBatches decodes whole batches as the log serves them.
func parseBatches(data []byte) ([]mbatch, error) {
	var out []mbatch
	for len(data) > 0 {
		h, err := batch.ParseHeader(data)
		if err != nil {
			return nil, err
		}
		raw := data[:h.Size()]
		m := mbatch{base: h.BaseOffset, last: h.LastOffset(), pid: h.ProducerID, txn: h.Transactional(), control: h.Control(),
			firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), ts: h.MaxTimestamp}
		if m.control {
			if m.commit, err = batch.IsCommitMarker(raw); err != nil {
				return nil, fmt.Errorf("marker at %d: %w", h.BaseOffset, err)
			}
		} else {
			recs, err := batch.Records(raw)
			if err != nil {
				return nil, fmt.Errorf("records at %d: %w", h.BaseOffset, err)
			}
			for _, rec := range recs {
				m.values = append(m.values, string(rec.Value))
			}
		}
		out = append(out, m)
		data = data[h.Size():]
	}
	return out, nil
}

func sameBatches(got, want []mbatch) error {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return fmt.Errorf("batch at %d (%v) missing", want[i].base, want[i].values)
		case i >= len(want):
			return fmt.Errorf("batch at %d (%v) was never written", got[i].base, got[i].values)
		}
		g, w := got[i], want[i]
		if g.base != w.base || g.last != w.last || g.pid != w.pid || g.control != w.control || g.commit != w.commit ||
			strings.Join(g.values, ",") != strings.Join(w.values, ",") {
			return fmt.Errorf("at %d: stored %+v, written %+v", w.base, g, w)
		}
	}
	return nil
}

// reopened checks a partition just opened: its producer state equals
// the one a replay of the whole log from its start yields (what the
// snapshots hold must not differ from what the log says).
func (r *runner) reopened(crashed bool) error {
	c := r.fs.Clone()
	for _, name := range c.List(dir, ".snapshot") {
		if err := c.Remove(filepath.Join(dir, name)); err != nil {
			return r.failf("remove %s: %v", name, err)
		}
	}
	cfg := r.config()
	cfg.FS = c
	q, err := partition.OpenWith("t", 0, dir, cfg, 0, []int32{0}, partition.Options{ManualFlush: true})
	if err != nil {
		return r.failf("open for replay: %v", err)
	}
	defer q.Close()
	start := r.p.LogStartOffset()
	how := map[bool]string{true: "crash", false: "restart"}[crashed]
	if err := sameProducers(r.p.Producers(), q.Producers(), start); err != nil {
		return r.failf("producer state after a %s differs from a replay of the log: %v", how, err)
	}
	// The aborted transactions too: both read the same records committed.
	to := min(r.p.LastStableOffset(), q.LastStableOffset())
	got, err := r.readCommittedOf(r.p, start, to)
	if err != nil {
		return err
	}
	want, err := r.readCommittedOf(q, start, to)
	if err != nil {
		return err
	}
	if !slices.Equal(got, want) {
		return r.failf("read_committed [%d, %d) after a %s returns %v, after a replay of the log %v", start, to, how, got, want)
	}
	return nil
}

// sameProducers compares recovered producer state with a replay's. An
// open transaction that began below the log start is held from the log
// start in the one and from its first batch still readable in the other.
func sameProducers(got, want []producer.Entry, start int64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d producers, replay has %d: %+v vs %+v", len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		gf, wf := max(g.TxnFirstOffset, start), max(w.TxnFirstOffset, start)
		switch {
		case g.ProducerID != w.ProducerID || g.Epoch != w.Epoch || g.InTxn != w.InTxn || g.LastOffset != w.LastOffset:
		case g.InTxn && gf != wf && gf != start:
		case len(g.Batches) != len(w.Batches):
		default:
			same := true
			for j := range g.Batches {
				if g.Batches[j] != w.Batches[j] {
					same = false
				}
			}
			if same {
				continue
			}
		}
		return fmt.Errorf("producer %d: recovered %+v, replay %+v", g.ProducerID, g, w)
	}
	return nil
}
