package broker

// The driver of the transaction coordinator: internal/txn is a pure state
// machine, this file does its I/O. Transaction state is kept in the
// compacted internal topic __transaction_state, one record per
// transactional id (keyed by the id, its partition chosen as Kafka
// chooses it), each made durable before the coordinator acts on it.
// Markers are written straight to the local partitions: on one node the
// coordinator leads every partition.
//
// Calls into the state machine are serialised by txnDriver.smu, which is
// never held across I/O: each append, marker write and producer-id
// allocation the state machine asks for runs on a goroutine of its own
// (tracked by txnDriver.io, which the broker's Close waits for; they end
// early with errTxnClosed when it stops) and reports back under smu. Lock
// order: txnDriver.mu (loading), then txnDriver.smu; the goroutines take
// partition and group-shard locks without holding either.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// errTxnClosed ends the coordinator's I/O when the broker stops.
var errTxnClosed = errors.New("transaction coordinator closed")

// txnDriver owns the coordinator and its state topic. mu serialises
// loading; smu guards every field below it.
type txnDriver struct {
	b      *Broker
	c      *txn.Coordinator
	mu     sync.Mutex
	loaded atomic.Bool

	smu     sync.Mutex
	token   uint64
	waiting map[uint64]chan txn.Response
	timer   *time.Timer
	closed  bool
	idle    chan struct{} // closed once the state machine is idle, if set
	io      sync.WaitGroup

	// afterVerify, set only by tests, runs once the coordinator has
	// confirmed a transactional write to tp and before it is appended.
	afterVerify atomic.Pointer[func(tp txn.TopicPartition)]
}

// verified runs the test hook, if any, for a write the coordinator
// confirmed.
func (d *txnDriver) verified(tp txn.TopicPartition) {
	if f := d.afterVerify.Load(); f != nil {
		(*f)(tp)
	}
}

// maxSettleWait bounds how long a request waits for the previous
// transaction of its id to complete before it is answered
// CONCURRENT_TRANSACTIONS (txn.Config.SettleWaitMs).
const maxSettleWait = time.Second

// newTxnDriver builds the driver; the coordinator is closed when the
// broker stops, before its partitions close, and the broker's Close
// waits for the coordinator's I/O to end.
func newTxnDriver(b *Broker) *txnDriver {
	d := &txnDriver{b: b, waiting: map[uint64]chan txn.Response{}}
	s := b.settings
	d.c = txn.New(txn.Config{
		MaxTimeoutMs:   s.Int("transaction.max.timeout.ms"),
		IDExpirationMs: s.Int("transactional.id.expiration.ms"),
		SettleWaitMs:   maxSettleWait.Milliseconds(),
	})
	d.timer = time.AfterFunc(time.Hour, d.tick)
	d.timer.Stop()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		<-b.stop
		d.close()
	}()
	return d
}

// close stops the state machine, answers every waiting request with
// ErrClosed and waits for the I/O in flight, which the broker's stop
// cuts short.
func (d *txnDriver) close() {
	d.smu.Lock()
	d.closed = true
	d.timer.Stop()
	d.deliverLocked(d.c.Close().Responses)
	for tok, ch := range d.waiting {
		ch <- txn.Response{Token: tok, ProducerID: -1, ProducerEpoch: -1, Err: txn.ErrClosed}
		delete(d.waiting, tok)
	}
	if d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
	d.smu.Unlock()
	d.io.Wait()
}

// do steps one request and waits for its response.
func (d *txnDriver) do(req txn.Request) txn.Response {
	ch := make(chan txn.Response, 1)
	d.smu.Lock()
	if d.closed {
		d.smu.Unlock()
		return txn.Response{ProducerID: -1, ProducerEpoch: -1, Err: txn.ErrClosed}
	}
	d.token++
	tok := d.token
	d.waiting[tok] = ch
	d.applyLocked(d.c.Step(nowMs(), txn.Input{Token: tok, Req: req}))
	d.smu.Unlock()
	return <-ch
}

// report runs a report into the state machine and carries out its Ready.
func (d *txnDriver) report(f func(nowMs int64) txn.Ready) {
	d.smu.Lock()
	defer d.smu.Unlock()
	if !d.closed {
		d.applyLocked(f(nowMs()))
	}
}

func (d *txnDriver) tick() { d.report(d.c.Tick) }

// view is the coordinator's published snapshot, read without a lock.
func (d *txnDriver) view() *txn.View { return d.c.View() }

// describe and list read the state machine under smu (in memory only).
func (d *txnDriver) describe(ids []string) map[string]txn.Meta {
	d.smu.Lock()
	defer d.smu.Unlock()
	return d.c.Describe(ids)
}

func (d *txnDriver) list() []txn.Meta {
	d.smu.Lock()
	defer d.smu.Unlock()
	return d.c.List()
}

// goLocked runs f on a goroutine the broker's Close waits for.
func (d *txnDriver) goLocked(f func()) {
	if d.closed {
		return
	}
	d.io.Add(1)
	go func() {
		defer d.io.Done()
		f()
	}()
}

// applyLocked carries out a Ready: its I/O on goroutines that report
// back, its responses to the waiting requests, its timer.
func (d *txnDriver) applyLocked(rd txn.Ready) {
	for _, a := range rd.Appends {
		d.goLocked(func() {
			err := d.put(a.TransactionalID, a.Meta)
			d.report(func(now int64) txn.Ready { return d.c.AppendDone(now, a.ID, err) })
		})
	}
	for _, m := range rd.Markers {
		d.goLocked(func() {
			err := d.writeMarkers(m.Meta, m.Commit)
			d.report(func(now int64) txn.Ready { return d.c.MarkersDone(now, m.ID, err) })
		})
	}
	if n := rd.NeedProducerIDs; n > 0 {
		d.goLocked(func() {
			for range n {
				pid, err := d.b.nextProducerID()
				if err != nil {
					err = wrap(kerr.CoordinatorNotAvailable, err)
				}
				d.report(func(now int64) txn.Ready { return d.c.ProducerID(now, pid, err) })
			}
		})
	}
	for _, err := range rd.Errors {
		// Left prepared or open: the ticker retries it.
		d.b.logger.Error("transaction coordinator", "err", err)
	}
	d.deliverLocked(rd.Responses)
	if rd.Deadline != 0 && !d.closed {
		d.timer.Reset(max(time.Duration(rd.Deadline-nowMs())*time.Millisecond, minTickInterval))
	}
	if d.idle != nil && d.c.Idle() {
		close(d.idle)
		d.idle = nil
	}
}

func (d *txnDriver) deliverLocked(rs []txn.Response) {
	for _, r := range rs {
		if ch, ok := d.waiting[r.Token]; ok {
			ch <- r
			delete(d.waiting, r.Token)
		}
	}
}

// coordinator returns the driver once the coordinator's state is loaded,
// creating __transaction_state if create is set and it does not exist
// yet; nil when it does not exist and create is not set.
func (d *txnDriver) coordinator(create bool) (*txnDriver, error) {
	if d.loaded.Load() {
		return d, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loaded.Load() {
		return d, nil
	}
	b := d.b
	exists, err := b.ensureInternalTopic(internalTopic{
		name:       TxnStateTopic,
		partitions: int32(b.settings.Int("transaction.state.log.num.partitions")),
		configs:    map[string]string{"cleanup.policy": "compact"},
	}, create)
	if err != nil || !exists {
		return nil, err
	}
	for _, part := range b.internalPartitions(TxnStateTopic) {
		if err := d.replay(part); err != nil {
			return nil, err
		}
	}
	// Recovery completes the transactions left prepared, and the broker
	// starts serving once it has tried: like the rest of the start, in
	// dependency order. One it could not complete stays prepared for the
	// ticker and never fails the start.
	idle := make(chan struct{})
	d.smu.Lock()
	d.idle = idle
	d.applyLocked(d.c.Loaded(nowMs()))
	d.smu.Unlock()
	<-idle
	d.loaded.Store(true)
	return d, nil
}

// replay loads one partition's records into the state machine.
func (d *txnDriver) replay(part *partition.Partition) error {
	return replayPartition(part, func(data []byte, h batch.Header) error {
		recs, err := batch.Records(data)
		if err != nil {
			return fmt.Errorf("replay %s-%d at %d: %w", part.Topic, part.Index, h.BaseOffset, err)
		}
		for _, r := range recs {
			if r.Value == nil {
				d.c.Replay(string(r.Key), nil)
				continue
			}
			var m txn.Meta
			if err := json.Unmarshal(r.Value, &m); err != nil {
				return fmt.Errorf("replay %s-%d at %d: %w", part.Topic, part.Index, h.BaseOffset+int64(r.OffsetDelta), err)
			}
			d.c.Replay(string(r.Key), &m)
		}
		return nil
	})
}

// put makes one state record durable (a nil m is a tombstone).
func (d *txnDriver) put(id string, m *txn.Meta) error {
	// The topic's own partition count, not the setting: a changed
	// setting must not move an id's records to another partition.
	n := d.b.partitionCount(TxnStateTopic)
	part, kerrc := d.b.partition(TxnStateTopic, group.PartitionFor(id, n))
	if kerrc != nil {
		return kerrc
	}
	rec := batch.Record{Key: []byte(id)}
	if m != nil {
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		rec.Value = v
	}
	durable, err := appendInternal(part, batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{rec}, nil)
	if err != nil {
		return err
	}
	if err := d.wait(durable); err != nil {
		return fmt.Errorf("%w: %v", txn.ErrOutcomeUnknown, err)
	}
	return nil
}

// wait waits for a durability report, or for the broker to stop.
func (d *txnDriver) wait(ch <-chan error) error {
	select {
	case err := <-ch:
		return err
	case <-d.b.stop:
		return errTxnClosed
	}
}

// writeMarkers writes a marker in every partition of the transaction,
// all durable before it returns.
func (d *txnDriver) writeMarkers(m *txn.Meta, commit bool) error {
	if d.b.cfg.Faults.PassUntil(faults.TxnBeforeMarkers, d.b.stop) {
		return errTxnClosed
	}
	var waits []<-chan error
	for _, tp := range m.Partitions {
		part, kerrc := d.b.partition(tp.Topic, tp.Partition)
		if kerrc != nil {
			continue // the topic was deleted: nothing left to mark
		}
		end, err := part.AppendMarker(m.ProducerID, m.ProducerEpoch, commit, 0)
		if err != nil {
			return fmt.Errorf("marker for %s-%d: %w", tp.Topic, tp.Partition, err)
		}
		waits = append(waits, part.WaitDurable(end))
	}
	// Each group's offsets live in one __consumer_offsets partition; a
	// marker there ends them, and the group shard then makes them
	// visible (commit) or drops them (abort).
	var shards []*groupShard
	for _, g := range m.Groups {
		s, err := d.b.groups.shardFor(g, true)
		if err != nil {
			return fmt.Errorf("group %q: %w", g, err)
		}
		if slices.Contains(shards, s) {
			continue
		}
		shards = append(shards, s)
		end, err := s.part.AppendMarker(m.ProducerID, m.ProducerEpoch, commit, 0)
		if err != nil {
			return fmt.Errorf("marker for group %q: %w", g, err)
		}
		waits = append(waits, s.part.WaitDurable(end))
	}
	for _, w := range waits {
		if err := d.wait(w); err != nil {
			return err
		}
	}
	for _, s := range shards {
		s.completeTxn(m.ProducerID, commit)
	}
	if d.b.cfg.Faults.PassUntil(faults.TxnBeforeComplete, d.b.stop) {
		return errTxnClosed
	}
	return nil
}

// verifyTxnBatch is the KIP-890 check for a transactional batch, read
// from the coordinator's published view without a lock.
func (b *Broker) verifyTxnBatch(topic string, partition int32, h batch.Header) error {
	d, err := b.txns.coordinator(false)
	if err != nil {
		return wrap(kerr.CoordinatorNotAvailable, err)
	}
	if d == nil {
		return kerr.InvalidProducerIDMapping
	}
	return d.view().InTransaction(h.ProducerID, h.ProducerEpoch, txn.TopicPartition{Topic: topic, Partition: partition})
}

// txnTicker finishes failed completions, aborts timed-out transactions
// and expires idle ids.
func (b *Broker) txnTicker() {
	defer b.wg.Done()
	t := time.NewTicker(time.Duration(b.settings.Int("transaction.abort.timed.out.transaction.cleanup.interval.ms")) * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			if d, err := b.txns.coordinator(false); err == nil && d != nil {
				d.tick()
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
