// Package partition is one replica of one partition: its log, its high
// watermark, its leader epoch and ISR, and the requests waiting on it.
//
// Appends are serialised by the partition's mutex, which is held across the
// write to the log (that ordering is the point) but never across an fsync.
// A per-partition flusher goroutine fsyncs whatever has been appended since
// its last round, so concurrent producers share one fsync (group commit).
// The high watermark is the offset below which a record is durable on
// every in-sync replica (replicas.go): on a leader, the smallest of its
// own flushed offset and every in-sync follower's acknowledged one; on a
// follower, the smaller of its flushed offset and the leader's high
// watermark. With an ISR of the leader alone it is the flushed offset:
// nothing is visible to consumers before it is durable.
package partition

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/faults"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/producer"
)

// ErrClosed is returned to waiters when the partition closes under them.
var ErrClosed = errors.New("partition closed")

// Partition is one replica of a partition, led by this node or following
// another's.
type Partition struct {
	Topic string
	Index int32
	// Faults, when set, may skip duplicate detection (faults.ProducerDedup):
	// only for testing that duplicates are caught downstream.
	Faults *faults.Injector

	dir  string
	log  *wlog.Log
	fs   wlog.FS          // the log's file system, also for producer snapshots
	now  func() time.Time // the log's clock
	opts Options

	// mu serialises appends and guards leaderEpoch, epochs, producers,
	// sinceSnapshot and guards. role and isr are written holding
	// both mu and wmu, so either lock suffices to read them.
	mu          sync.Mutex
	leaderEpoch int32
	epochs      epochCache // the epochs of the log (epochs.go)
	role        role
	isr         []int32
	// proposedISR is the ISR the leader has asked the controller for and
	// not yet seen committed or refused (ProposeISR); nil when none.
	// Written under wmu.
	proposedISR   []int32
	producers     *producer.State
	sinceSnapshot int64                  // bytes appended since the last producer snapshot
	guards        map[*TxnGuard]struct{} // verifications in progress (verify.go)

	// snapMu serialises producer snapshots; it is taken before mu and
	// held across the snapshot's write, which no request waits for.
	snapMu sync.Mutex

	hw atomic.Int64
	// firstUnstable is the first offset of the earliest transaction that
	// is open or whose marker is not yet durable, or noOpenTxn; written
	// under wmu (see publishFirstUnstableLocked), read without a lock.
	firstUnstable atomic.Int64

	// wmu guards the waiting lists, the sticky flush error, openFirst,
	// ending and what the high watermark is computed from (flushed,
	// minISR, followers, leaderHW). Lock order: mu before wmu.
	wmu sync.Mutex
	// flushed is the local log's flushed offset as the last Sync
	// published it.
	flushed int64
	// minISR is the topic's min.insync.replicas: a leader's high
	// watermark does not advance while the ISR is smaller (KIP-966).
	minISR int
	// followers is what a leader knows of each follower that fetched
	// since it became leader at its current epoch.
	followers map[int32]*follower
	// leaderHW is, on a follower, the highest high watermark its leader
	// sent it.
	leaderHW int64
	// openFirst is the first offset of the earliest open transaction in
	// the producer state, or noOpenTxn.
	openFirst int64
	// ending lists transactions whose marker is in the log but not yet
	// durable: the last stable offset stays at their first offset until
	// the high watermark passes the marker, so a crash that takes the
	// marker can never take back what read_committed readers were shown.
	ending   []endingTxn
	waiters  []waiter // appends waiting to be durable
	watchers map[chan<- struct{}]struct{}
	// endWatchers wait for the log end (or the log start) to move
	// (replica fetches long-polling at the leader's end); nEndWatchers
	// counts them so an append with none pays one atomic load.
	endWatchers  map[chan<- struct{}]struct{}
	nEndWatchers atomic.Int32
	flushErr     error
	closed       bool

	// lowWatchers wait for the low watermark to move (DeleteRecords
	// waiting for the followers' log starts, low_watermark.go). Guarded
	// by wmu.
	lowWatchers map[chan<- struct{}]struct{}

	flushCh chan struct{}
	closing chan struct{}
	done    chan struct{}
}

type endingTxn struct {
	first     int64 // the transaction's first offset
	markerEnd int64 // the offset after its marker
}

type waiter struct {
	offset int64 // durable once hw >= offset
	ch     chan error
}

// Options are a partition's settings beyond its log's. The zero value
// with ReplicaID set is what a broker runs with.
type Options struct {
	// ReplicaID is this node's broker id: the ISR members other than it
	// are the followers whose acknowledgements bound the high watermark.
	ReplicaID int32
	// Follower opens the partition as a follower (BecomeFollower): no
	// leader epoch is started, the epochs in the log are the leader's.
	Follower bool
	// ManualFlush starts no flusher goroutine: the high watermark moves
	// only when Flush is called. For deterministic simulation.
	ManualFlush bool
	// SnapshotIntervalBytes is how much is appended between producer
	// state snapshots; 0 means 64 MiB.
	SnapshotIntervalBytes int64
	// Yield, when set, is called at the points named by Point, where in
	// a real run another goroutine's work could slip in. It runs with the
	// partition's append lock held, so it may only do what needs no
	// lock: flush, read, look at the offsets. For deterministic simulation.
	Yield func(Point)
}

// Point names a place inside a partition operation where the
// operation's effects are half made.
type Point int

// The points at which Options.Yield is called.
const (
	// AfterLogAppend: Append or AppendMarker has written its batch to the
	// log and not yet updated the producer state.
	AfterLogAppend Point = iota
	// AfterStartMoved: DeleteRecordsBefore or EnforceRetention has moved
	// the log start and not yet dropped the producer state below it.
	AfterStartMoved
)

// Open opens (and recovers) the partition's log in dir and starts its
// flusher. Everything recovered is made durable before it is served.
func Open(topic string, index int32, dir string, cfg wlog.Config, leaderEpoch int32, isr []int32) (*Partition, error) {
	return OpenWith(topic, index, dir, cfg, leaderEpoch, isr, Options{})
}

// OpenWith is Open with options.
func OpenWith(topic string, index int32, dir string, cfg wlog.Config, leaderEpoch int32, isr []int32, opts Options) (*Partition, error) {
	if cfg.FS == nil {
		cfg.FS = wlog.OSFS{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if opts.SnapshotIntervalBytes <= 0 {
		opts.SnapshotIntervalBytes = snapshotIntervalBytes
	}
	l, err := wlog.Open(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s-%d: %w", topic, index, err)
	}
	flushed, err := l.Sync()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("sync %s-%d: %w", topic, index, err)
	}
	p := &Partition{
		Topic: topic, Index: index, dir: dir, log: l, fs: cfg.FS, now: cfg.Now, opts: opts,
		leaderEpoch: leaderEpoch, isr: append([]int32(nil), isr...),
		producers:   producer.NewState(),
		watchers:    make(map[chan<- struct{}]struct{}),
		endWatchers: make(map[chan<- struct{}]struct{}),
		followers:   make(map[int32]*follower),
		minISR:      1,
		openFirst:   noOpenTxn,
		flushCh:     make(chan struct{}, 1),
		closing:     make(chan struct{}),
		done:        make(chan struct{}),
	}
	// Everything recovered is durable here. Alone, this replica makes it
	// the high watermark. With others, what they hold is unknown until
	// they fetch (or, on a follower, until the leader says): the high
	// watermark starts at the log start, and the replay below lists the
	// markers above it as ending.
	p.flushed = flushed
	p.hw.Store(flushed)
	if opts.Follower {
		p.role, p.isr = roleFollower, nil
	}
	if opts.Follower || slices.ContainsFunc(isr, func(id int32) bool { return id != opts.ReplicaID }) {
		p.hw.Store(l.StartOffset())
	}
	p.leaderHW = p.hw.Load()
	if err := p.loadProducers(cfg.Now().UnixMilli()); err != nil {
		l.Close()
		return nil, fmt.Errorf("producer state of %s-%d: %w", topic, index, err)
	}
	held, err := p.loadEpochs()
	if err == nil && p.role == roleLeader && leaderEpoch > p.epochs.latest() {
		p.epochs.assign(leaderEpoch, l.EndOffset())
	}
	// One write, before any batch is appended, and none when the file
	// already says it: a leader reopened at its epoch puts back the entry
	// the fit to an empty log end took out.
	if err == nil && !slices.Equal(held, p.epochs) {
		err = wlog.WriteFileDurably(p.fs, p.dir, EpochCheckpointFile, p.epochs.encode())
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("leader epochs of %s-%d: %w", topic, index, err)
	}
	if opts.ManualFlush {
		close(p.done)
	} else {
		go p.flusher()
	}
	return p, nil
}

// yield calls Options.Yield, if set.
func (p *Partition) yield(at Point) {
	if p.opts.Yield != nil {
		p.opts.Yield(at)
	}
}

// LeaderEpoch is the current leader epoch.
func (p *Partition) LeaderEpoch() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leaderEpoch
}

// HighWatermark is the offset below which records are durable and visible.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// noOpenTxn is firstUnstable when no transaction is open.
const noOpenTxn = int64(1<<63 - 1)

// LastStableOffset bounds read_committed fetches: the first offset of the
// earliest open transaction, or the high watermark when it is lower, and
// never below the log start (what an open transaction had below it is
// gone).
func (p *Partition) LastStableOffset() int64 {
	_, lso, _ := p.Offsets()
	return lso
}

// Offsets returns the log start offset, the last stable offset and the
// high watermark as of one moment, so that start ≤ LSO ≤ HW holds between
// them (reading each on its own can see the HW move between two reads).
func (p *Partition) Offsets() (start, lso, hw int64) {
	start = p.log.StartOffset()
	hw = p.hw.Load()
	return start, min(hw, max(p.firstUnstable.Load(), start)), hw
}

// FlushedOffset is the offset below which this replica's log is fsynced:
// a follower fetches from it, as that is what it acknowledges.
func (p *Partition) FlushedOffset() int64 { return p.log.FlushedOffset() }

// LogStartOffset is the first offset still in the log.
func (p *Partition) LogStartOffset() int64 { return p.log.StartOffset() }

// LogEndOffset is the next offset to be assigned.
func (p *Partition) LogEndOffset() int64 { return p.log.EndOffset() }

// Append writes one validated batch and returns its base offset. An
// idempotent batch is first checked against the producer state: a retry
// of a batch already appended is not written again, and its original
// metadata is returned instead. The batch becomes durable and visible
// asynchronously; WaitDurable waits for it. nowMs is the broker's clock.
func (p *Partition) Append(b []byte, h batch.Header, nowMs int64) (int64, *producer.BatchMeta, error) {
	return p.append(b, h, nowMs, nil)
}

// append is Append, and AppendVerified when g is set.
func (p *Partition) append(b []byte, h batch.Header, nowMs int64, g *TxnGuard) (int64, *producer.BatchMeta, error) {
	p.mu.Lock()
	if p.role != roleLeader {
		p.mu.Unlock()
		return 0, nil, ErrNotLeader
	}
	if h.Idempotent() {
		dup, err := p.producers.Check(h)
		if dup != nil && p.Faults.Fire(faults.ProducerDedup).Kind == faults.Skip {
			dup = nil
		}
		if err != nil || dup != nil {
			p.mu.Unlock()
			return 0, dup, err
		}
	}
	if g != nil && !p.verifiedLocked(g) {
		p.mu.Unlock()
		return 0, nil, ErrTxnEnded
	}
	batch.SetLeaderEpoch(b, p.leaderEpoch)
	if h.Transactional() {
		// The flusher moves the high watermark without p.mu, so a
		// transaction's first offset is published before its first batch
		// is in the log: the last stable offset never passes it.
		end := p.log.EndOffset()
		p.wmu.Lock()
		p.openFirst = min(p.openFirst, end)
		p.publishFirstUnstableLocked()
		p.wmu.Unlock()
	}
	base, err := p.log.Append(b)
	if err == nil {
		p.yield(AfterLogAppend)
		if h.Idempotent() {
			p.producers.Update(h, base, nowMs)
		}
		p.sinceSnapshot += int64(len(b))
	}
	if h.Transactional() {
		p.updateFirstUnstableLocked()
	}
	p.mu.Unlock()
	if err != nil {
		return 0, nil, err
	}
	p.kickFlusher()
	p.notifyEnd()
	return base, nil, nil
}

// kickFlusher asks the flusher for a round.
func (p *Partition) kickFlusher() {
	select {
	case p.flushCh <- struct{}{}:
	default: // a flush is already due; it will cover this append
	}
}

// WaitDurable returns a channel that receives nil once every offset below
// end is durable (the high watermark passed it), or the error that stops
// it from ever being: on a follower, or once this replica stops leading,
// ErrNotLeader, as a deposed leader can no longer tell what the ISR holds.
func (p *Partition) WaitDurable(end int64) <-chan error {
	ch := make(chan error, 1)
	p.wmu.Lock()
	defer p.wmu.Unlock()
	switch {
	case p.role != roleLeader:
		ch <- ErrNotLeader
	case p.hw.Load() >= end:
		ch <- nil
	case p.flushErr != nil:
		ch <- p.flushErr
	case p.closed:
		ch <- ErrClosed
	default:
		p.waiters = append(p.waiters, waiter{offset: end, ch: ch})
	}
	return ch
}

// Watch registers ch to receive a non-blocking send whenever the high
// watermark moves. Unwatch removes it.
func (p *Partition) Watch(ch chan<- struct{}) {
	p.wmu.Lock()
	p.watchers[ch] = struct{}{}
	p.wmu.Unlock()
}

// Unwatch stops notifications to ch.
func (p *Partition) Unwatch(ch chan<- struct{}) {
	p.wmu.Lock()
	delete(p.watchers, ch)
	p.wmu.Unlock()
}

// Read returns whole batches from offset, none starting at or beyond limit
// (the high watermark or the last stable offset), within maxBytes except
// that the first batch is always whole.
func (p *Partition) Read(offset, limit int64, maxBytes int) ([]byte, error) {
	return p.log.Read(offset, limit, maxBytes)
}

// ReadInto is Read into buf's storage (see log.ReadInto).
func (p *Partition) ReadInto(buf []byte, offset, limit int64, maxBytes int) ([]byte, error) {
	return p.log.ReadInto(buf, offset, limit, maxBytes)
}

// OffsetForTimestamp finds the first offset with a timestamp at or after ts.
func (p *Partition) OffsetForTimestamp(ts int64) (offset, timestamp int64, ok bool) {
	return p.log.OffsetForTimestamp(ts)
}

// MaxTimestamp is the offset and timestamp of the newest-stamped record.
func (p *Partition) MaxTimestamp() (offset, timestamp int64) { return p.log.MaxTimestamp() }

// DeleteRecordsBefore moves the log start offset up to offset, which must
// not pass the high watermark, and forgets the producer state below it.
func (p *Partition) DeleteRecordsBefore(offset int64) (int64, error) {
	if offset == -1 {
		offset = p.hw.Load()
	}
	if offset < 0 || offset > p.hw.Load() {
		return 0, wlog.ErrOffsetOutOfRange
	}
	if err := p.log.DeleteRecordsBefore(offset); err != nil {
		return 0, err
	}
	if err := p.startMoved(); err != nil {
		return 0, err
	}
	return p.log.StartOffset(), nil
}

// EnforceRetention deletes segments past the retention limits, never
// above the high watermark, and forgets the producer state below the new
// log start.
func (p *Partition) EnforceRetention() (int, error) {
	n, err := p.log.EnforceRetention(p.hw.Load())
	if err != nil || n == 0 {
		return n, err
	}
	return n, p.startMoved()
}

// startMoved follows a move of the log start: producer state below it
// goes (a replay from the new start would never learn it), and a fresh
// snapshot is written, since recovery ignores snapshots older than the
// log start.
func (p *Partition) startMoved() error {
	p.mu.Lock()
	p.yield(AfterStartMoved)
	p.producers.TruncateHead(p.log.StartOffset())
	p.epochs.truncateFromStart(p.log.StartOffset())
	p.updateFirstUnstableLocked()
	p.mu.Unlock()
	// Followers waiting at the log end learn the new log start only from
	// a fetch answer, and DeleteRecords waits for them to follow it.
	p.notifyEnd()
	return p.snapshotProducers()
}

// SetConfig changes the log's segment and retention settings.
func (p *Partition) SetConfig(cfg wlog.Config) { p.log.SetConfig(cfg) }

// Size is the partition's size on disk.
func (p *Partition) Size() int64 { return p.log.Size() }

// Close stops the flusher, fails any waiter, snapshots the producer state
// and closes the log cleanly.
func (p *Partition) Close() error {
	close(p.closing)
	<-p.done
	err := p.snapshotProducers()
	if cerr := p.log.Close(); err == nil {
		err = cerr
	}
	p.wmu.Lock()
	p.closed = true
	for _, w := range p.waiters {
		w.ch <- ErrClosed
	}
	p.waiters = nil
	p.wmu.Unlock()
	return err
}

func (p *Partition) flusher() {
	defer close(p.done)
	for {
		select {
		case <-p.closing:
			return
		case <-p.flushCh:
		}
		if err := p.Flush(); err != nil {
			return // the flush error is sticky; the log refuses appends too
		}
	}
}

// Flush runs one round of the flusher: Sync, then a producer state
// snapshot when one is due. The flusher calls it; with
// Options.ManualFlush, only the caller does.
func (p *Partition) Flush() error {
	if err := p.Sync(); err != nil {
		return err
	}
	if p.snapshotDue() {
		if err := p.snapshotProducers(); err != nil {
			p.advance(0, err)
			return err
		}
	}
	return nil
}

// Sync fsyncs what was appended and publishes the new high watermark to
// readers and waiters. It takes no partition lock. An error is sticky:
// every later waiter gets it.
func (p *Partition) Sync() error {
	flushed, err := p.log.Sync()
	p.advance(flushed, err)
	return err
}

// advance publishes a flush result to the high watermark and the waiters.
func (p *Partition) advance(flushed int64, err error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if err != nil {
		p.flushErr = err
		for _, w := range p.waiters {
			w.ch <- err
		}
		p.waiters = nil
		return
	}
	if flushed > p.flushed {
		// A Sync that returned before a truncation (TruncateTo) may
		// publish after it: the log's own flushed offset, which the
		// truncation lowered first, bounds what it says.
		p.flushed = min(flushed, p.log.FlushedOffset())
	}
	p.publishHWLocked()
}

// publishHWLocked moves the high watermark up to what its inputs now
// allow (highWatermarkLocked) and publishes everything that depends on
// it in this one critical section: the transactions whose markers it
// passed stop holding the last stable offset, the waiters it passed are
// answered and the watchers woken. p.wmu is held.
func (p *Partition) publishHWLocked() {
	hw := p.highWatermarkLocked()
	if hw <= p.hw.Load() {
		return
	}
	p.hw.Store(hw)
	if len(p.ending) > 0 {
		p.ending = slices.DeleteFunc(p.ending, func(t endingTxn) bool { return t.markerEnd <= hw })
		p.publishFirstUnstableLocked()
	}
	n := 0
	for _, w := range p.waiters {
		if w.offset <= hw {
			w.ch <- nil
			continue
		}
		p.waiters[n] = w
		n++
	}
	clear(p.waiters[n:])
	p.waiters = p.waiters[:n]
	for ch := range p.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
