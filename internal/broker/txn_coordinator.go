package broker

// The driver of the transaction coordinator: internal/txn is a pure state
// machine, this file does its I/O. Transaction state is kept in the
// compacted internal topic __transaction_state, one record per
// transactional id (keyed by the id, its partition chosen as Kafka
// chooses it), each made durable before the coordinator acts on it. A
// node runs one state machine (a txnShard) per __transaction_state
// partition it leads, loaded when leadership arrives and unloaded when it
// leaves (coordinator_shards.go). Markers go straight to the partitions
// this node leads and as WriteTxnMarkers to the leaders of the others.
//
// Calls into a shard's state machine are serialised by txnShard.smu,
// which is never held across I/O: each append, marker write and
// producer-id allocation the state machine asks for runs on a goroutine
// of its own (tracked by txnShard.io, which unload waits for; they end
// early with errTxnClosed when the shard stops) and reports back under
// smu. The goroutines take partition and group-shard locks without
// holding smu.

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
	"github.com/weir-broker/weir/internal/txn"
)

// TxnStateTopic is where the transaction coordinator keeps its state.
const TxnStateTopic = "__transaction_state"

// errTxnClosed ends a shard's I/O when it is unloaded or the broker stops.
var errTxnClosed = errors.New("transaction coordinator closed")

// txnCoordinator is the transaction coordinator of this node: one shard
// per __transaction_state partition it leads (coordinator_shards.go).
type txnCoordinator struct {
	b   *Broker
	set *shardSet[*txnShard]

	// afterVerify, set only by tests, runs once the coordinator has
	// confirmed a transactional write to tp and before it is appended.
	afterVerify atomic.Pointer[func(tp txn.TopicPartition)]
}

// txnShard is the state machine of one __transaction_state partition and
// its I/O. smu guards every field below it.
type txnShard struct {
	b    *Broker
	part *partition.Partition
	c    *txn.Coordinator
	// stop is closed when the shard is unloaded (or the broker stops):
	// its I/O ends early.
	stop chan struct{}

	smu     sync.Mutex
	token   uint64
	waiting map[uint64]chan txn.Response
	timer   *time.Timer
	closed  bool
	idle    chan struct{} // closed once the state machine is idle, if set
	io      sync.WaitGroup
}

// verified runs the test hook, if any, for a write the coordinator
// confirmed.
func (tc *txnCoordinator) verified(tp txn.TopicPartition) {
	if f := tc.afterVerify.Load(); f != nil {
		(*f)(tp)
	}
}

// maxSettleWait bounds how long a request waits for the previous
// transaction of its id to complete before it is answered
// CONCURRENT_TRANSACTIONS (txn.Config.SettleWaitMs).
const maxSettleWait = time.Second

func newTxnCoordinator(b *Broker) *txnCoordinator {
	tc := &txnCoordinator{b: b}
	tc.set = newShardSet(b, internalTopic{
		name:              TxnStateTopic,
		partitions:        int32(b.settings.Int("transaction.state.log.num.partitions")),
		replicationFactor: int16(b.settings.Int("transaction.state.log.replication.factor")),
		configs: map[string]string{
			"cleanup.policy":      "compact",
			"min.insync.replicas": strconv.FormatInt(b.settings.Int("transaction.state.log.min.isr"), 10),
		},
	}, tc.open)
	return tc
}

// get returns the shard coordinating transactional id, creating
// __transaction_state first if create is set (see shardSet.get).
func (tc *txnCoordinator) get(id string, create bool) (*txnShard, error) {
	return tc.set.get(id, create)
}

// open replays a partition into a new shard, then completes what it left
// prepared: the shard serves once recovery has tried (like the rest of a
// start, in dependency order). A transaction it could not complete stays
// prepared for the ticker.
func (tc *txnCoordinator) open(part *partition.Partition) (*txnShard, error) {
	b := tc.b
	s := &txnShard{b: b, part: part, waiting: map[uint64]chan txn.Response{}, stop: make(chan struct{})}
	cfg := b.settings
	s.c = txn.New(txn.Config{
		MaxTimeoutMs:   cfg.Int("transaction.max.timeout.ms"),
		IDExpirationMs: cfg.Int("transactional.id.expiration.ms"),
		SettleWaitMs:   maxSettleWait.Milliseconds(),
	})
	s.timer = time.AfterFunc(time.Hour, s.tick)
	s.timer.Stop()
	if err := s.replay(part); err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-b.stop:
			s.unload()
		case <-b.startAborted: // the start is cut short (SIGTERM)
			s.unload()
		case <-s.stop:
		}
	}()
	idle := make(chan struct{})
	s.smu.Lock()
	s.idle = idle
	s.applyLocked(s.c.Loaded(nowMs()))
	s.smu.Unlock()
	<-idle
	return s, nil
}

// unload stops the state machine, answers every waiting request with
// NOT_COORDINATOR (txn.ErrClosed) and waits for the I/O in flight, which
// it cuts short.
func (s *txnShard) unload() {
	s.smu.Lock()
	if s.closed {
		s.smu.Unlock()
		s.io.Wait()
		return
	}
	s.closed = true
	close(s.stop)
	s.timer.Stop()
	s.deliverLocked(s.c.Close().Responses)
	for tok, ch := range s.waiting {
		ch <- txn.Response{Token: tok, ProducerID: -1, ProducerEpoch: -1, Err: txn.ErrClosed}
		delete(s.waiting, tok)
	}
	if s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.smu.Unlock()
	s.io.Wait()
}

// do steps one request and waits for its response.
func (s *txnShard) do(req txn.Request) txn.Response {
	ch := make(chan txn.Response, 1)
	s.smu.Lock()
	if s.closed {
		s.smu.Unlock()
		return txn.Response{ProducerID: -1, ProducerEpoch: -1, Err: txn.ErrClosed}
	}
	s.token++
	tok := s.token
	s.waiting[tok] = ch
	s.applyLocked(s.c.Step(nowMs(), txn.Input{Token: tok, Req: req}))
	s.smu.Unlock()
	return <-ch
}

// report runs a report into the state machine and carries out its Ready.
func (s *txnShard) report(f func(nowMs int64) txn.Ready) {
	s.smu.Lock()
	defer s.smu.Unlock()
	if !s.closed {
		s.applyLocked(f(nowMs()))
	}
}

func (s *txnShard) tick() { s.report(s.c.Tick) }

// view is the shard's published snapshot, read without a lock.
func (s *txnShard) view() *txn.View { return s.c.View() }

// describe and list read the state machine under smu (in memory only).
func (s *txnShard) describe(ids []string) map[string]txn.Meta {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.c.Describe(ids)
}

func (s *txnShard) list() []txn.Meta {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.c.List()
}

// goLocked runs f on a goroutine that unload waits for.
func (s *txnShard) goLocked(f func()) {
	if s.closed {
		return
	}
	s.io.Add(1)
	go func() {
		defer s.io.Done()
		f()
	}()
}

// applyLocked carries out a Ready: its I/O on goroutines that report
// back, its responses to the waiting requests, its timer.
func (s *txnShard) applyLocked(rd txn.Ready) {
	for _, a := range rd.Appends {
		s.goLocked(func() {
			err := s.put(a.TransactionalID, a.Meta)
			s.report(func(now int64) txn.Ready { return s.c.AppendDone(now, a.ID, err) })
		})
	}
	for _, m := range rd.Markers {
		s.goLocked(func() {
			err := s.writeMarkers(m.Meta, m.Commit)
			s.report(func(now int64) txn.Ready { return s.c.MarkersDone(now, m.ID, err) })
		})
	}
	if n := rd.NeedProducerIDs; n > 0 {
		s.goLocked(func() {
			for range n {
				pid, err := s.b.nextProducerID()
				if err != nil {
					err = wrap(kerr.CoordinatorNotAvailable, err)
				}
				s.report(func(now int64) txn.Ready { return s.c.ProducerID(now, pid, err) })
			}
		})
	}
	for _, err := range rd.Errors {
		// Left prepared or open: the ticker retries it.
		s.b.logger.Error("transaction coordinator", "partition", s.part.Index, "err", err)
	}
	s.deliverLocked(rd.Responses)
	if rd.Deadline != 0 && !s.closed {
		s.timer.Reset(max(time.Duration(rd.Deadline-nowMs())*time.Millisecond, minTickInterval))
	}
	if s.idle != nil && s.c.Idle() {
		close(s.idle)
		s.idle = nil
	}
}

func (s *txnShard) deliverLocked(rs []txn.Response) {
	for _, r := range rs {
		if ch, ok := s.waiting[r.Token]; ok {
			ch <- r
			delete(s.waiting, r.Token)
		}
	}
}

// replay loads one partition's records into the state machine.
func (s *txnShard) replay(part *partition.Partition) error {
	return replayPartition(part, func(data []byte, h batch.Header) error {
		if h.Control() {
			// Only the coordinator writes here, and never a marker; one
			// that got in anyway holds no state.
			s.b.logger.Error("transaction coordinator: skipping a control batch", "partition", part.Index, "offset", h.BaseOffset)
			return nil
		}
		recs, err := batch.Records(data)
		if err != nil {
			return fmt.Errorf("replay %s-%d at %d: %w", part.Topic, part.Index, h.BaseOffset, err)
		}
		for _, r := range recs {
			if r.Value == nil {
				s.c.Replay(string(r.Key), nil)
				continue
			}
			var m txn.Meta
			if err := json.Unmarshal(r.Value, &m); err != nil {
				return fmt.Errorf("replay %s-%d at %d: %w", part.Topic, part.Index, h.BaseOffset+int64(r.OffsetDelta), err)
			}
			s.c.Replay(string(r.Key), &m)
		}
		return nil
	})
}

// put makes one state record durable in the shard's partition (a nil m
// is a tombstone).
func (s *txnShard) put(id string, m *txn.Meta) error {
	rec := batch.Record{Key: []byte(id)}
	if m != nil {
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		rec.Value = v
	}
	durable, err := appendInternal(s.part, batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{rec}, nil)
	if err != nil {
		return err
	}
	if err := s.wait(durable); err != nil {
		return fmt.Errorf("%w: %v", txn.ErrOutcomeUnknown, err)
	}
	return nil
}

// wait waits for a durability report, or for the shard to stop.
func (s *txnShard) wait(ch <-chan error) error {
	select {
	case err := <-ch:
		return err
	case <-s.stop:
		return errTxnClosed
	}
}

// writeMarkers writes a marker in every partition of the transaction and
// in each group's __consumer_offsets partition, all durable before it
// returns. Partitions this node leads are written here; the others are
// sent to their leaders as WriteTxnMarkers (interbroker.go). The marker
// carries the leader epoch of the shard's partition as coordinator epoch.
func (s *txnShard) writeMarkers(m *txn.Meta, commit bool) error {
	b := s.b
	if b.cfg.Faults.PassUntil(faults.TxnBeforeMarkers, s.stop) {
		return errTxnClosed
	}
	coordEpoch := s.part.LeaderEpoch()
	targets := make([]txn.TopicPartition, 0, len(m.Partitions)+len(m.Groups))
	targets = append(targets, m.Partitions...)
	// Each group's offsets live in one __consumer_offsets partition; a
	// marker there ends them, and the group shard then makes them
	// visible (commit) or drops them (abort).
	if len(m.Groups) > 0 {
		n := b.partitionCount(group.OffsetsTopic)
		if n == 0 {
			return fmt.Errorf("groups %v: %s does not exist", m.Groups, group.OffsetsTopic)
		}
		for _, g := range m.Groups {
			tp := txn.TopicPartition{Topic: group.OffsetsTopic, Partition: group.PartitionFor(g, n)}
			if !slices.Contains(targets, tp) {
				targets = append(targets, tp)
			}
		}
	}
	// Each local marker is awaited on its own, and a group shard is told
	// as soon as its partition's marker is durable, whatever happens to
	// the other partitions: a retry finds the marker already applied and
	// writes no second one, so the shard would otherwise never be told.
	type local struct {
		part    *partition.Partition
		durable <-chan error
		offsets bool // a __consumer_offsets partition whose marker was applied now
	}
	var locals []local
	var firstErr error
	remote := map[int32][]txn.TopicPartition{}
	for _, tp := range targets {
		leader, ok := b.leaderOf(tp.Topic, tp.Partition)
		if !ok {
			continue // the topic was deleted: nothing left to mark
		}
		if leader != b.cfg.NodeID {
			if leader < 0 {
				firstErr = cmp.Or(firstErr, fmt.Errorf("marker for %s-%d: the partition has no leader", tp.Topic, tp.Partition))
				continue
			}
			remote[leader] = append(remote[leader], tp)
			continue
		}
		part, kerrc := b.partition(tp.Topic, tp.Partition)
		if kerrc != nil {
			firstErr = cmp.Or(firstErr, fmt.Errorf("marker for %s-%d: %w", tp.Topic, tp.Partition, kerrc))
			continue
		}
		end, applied, err := part.AppendTxnMarker(m.ProducerID, m.ProducerEpoch, commit, coordEpoch, m.TxnSeq)
		if err != nil {
			firstErr = cmp.Or(firstErr, fmt.Errorf("marker for %s-%d: %w", tp.Topic, tp.Partition, err))
			continue
		}
		locals = append(locals, local{part, part.WaitDurable(end), tp.Topic == group.OffsetsTopic && applied})
	}
	errs := make(chan error, len(remote))
	for node, tps := range remote {
		go func() { errs <- b.sendMarkers(s.stop, node, m, commit, coordEpoch, tps) }()
	}
	for _, l := range locals {
		if err := s.wait(l.durable); err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		if l.offsets {
			b.groups.completeTxn(l.part.Index, m.ProducerID, commit)
		}
	}
	for range remote {
		if err := <-errs; err != nil {
			firstErr = cmp.Or(firstErr, err)
		}
	}
	if firstErr != nil {
		return firstErr
	}
	if b.cfg.Faults.PassUntil(faults.TxnBeforeComplete, s.stop) {
		return errTxnClosed
	}
	return nil
}

// verifyTxnBatch is the KIP-890 check for a transactional batch of
// transactional id id. When this node coordinates id, the shard's
// published view answers without a lock. Otherwise the coordinator is
// asked (AddPartitionsToTxn with VerifyOnly, as Kafka's partition leaders
// ask), for every batch: that the partition holds the producer's open
// transaction says nothing of whether EndTxn was accepted since, with the
// marker still on its way.
func (b *Broker) verifyTxnBatch(id string, part *partition.Partition, h batch.Header) error {
	s, err := b.txns.get(id, false)
	switch {
	case err == nil:
		return s.view().InTransaction(h.ProducerID, h.ProducerEpoch, txn.TopicPartition{Topic: part.Topic, Partition: part.Index})
	case errors.Is(err, errNoState) && b.ctrl.Clustered():
		// This node's image has no transactional state yet, which may
		// only mean it lags behind the quorum: the producer retries.
		return wrap(kerr.NotEnoughReplicas, errors.New("this broker does not know the transaction coordinators yet"))
	case errors.Is(err, errNoState):
		return kerr.InvalidProducerIDMapping
	case !b.ctrl.Clustered() || !errors.Is(err, kerr.NotCoordinator):
		return err
	}
	return b.verifyRemote(id, h.ProducerID, h.ProducerEpoch, txn.TopicPartition{Topic: part.Topic, Partition: part.Index})
}

// txnTicker finishes failed completions, aborts timed-out transactions
// and expires idle ids, in every loaded shard.
func (b *Broker) txnTicker() {
	defer b.wg.Done()
	t := time.NewTicker(time.Duration(b.settings.Int("transaction.abort.timed.out.transaction.cleanup.interval.ms")) * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			for _, s := range b.txns.set.loaded() {
				s.tick()
			}
		}
	}
}

// partitionCount is how many partitions topic has in the metadata image
// (0 when it does not exist).
func (b *Broker) partitionCount(topic string) int32 {
	var n int32
	b.ctrl.View(func(im *metadata.Image) {
		if t, ok := im.Topics[topic]; ok {
			n = int32(len(t.Partitions))
		}
	})
	return n
}

// leaderOf is the leader the image names for a partition (-1: none); ok
// is false when the partition does not exist.
func (b *Broker) leaderOf(topic string, index int32) (leader int32, ok bool) {
	b.ctrl.View(func(im *metadata.Image) {
		if t, found := im.Topics[topic]; found && index >= 0 && int(index) < len(t.Partitions) {
			leader, ok = t.Partitions[index].Leader, true
		}
	})
	return leader, ok
}
