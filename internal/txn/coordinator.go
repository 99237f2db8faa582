package txn

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Request is one of InitProducerID, AddPartitions, End or Abort.
type Request interface{ transactionalID() string }

// InitProducerID is InitProducerId with a transactional id. ProducerID
// and ProducerEpoch are -1 unless the producer presents its current pair
// (KIP-360, from v3).
type InitProducerID struct {
	TransactionalID string
	TimeoutMs       int32
	ProducerID      int64
	ProducerEpoch   int16
}

// AddPartitions is AddPartitionsToTxn (Partitions) or AddOffsetsToTxn
// (Groups).
type AddPartitions struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	Partitions      []TopicPartition
	Groups          []string
}

// End is EndTxn.
type End struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	Commit          bool
}

// Abort is an operator's abort of a hanging transaction (the console's
// abort button): the transaction open under ProducerID and ProducerEpoch
// that began at StartMs is aborted as a timed-out one is, at a bumped
// epoch that fences the producer. The three name the transaction the
// operator saw: a producer keeps its id and epoch from one transaction to
// the next (KIP-98), so without the start a newer transaction opened
// since would be aborted in its place. Each transaction of an id begins
// after the previous one's last change (see addPartitions), so its start
// is its own.
type Abort struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	StartMs         int64
}

func (r InitProducerID) transactionalID() string { return r.TransactionalID }
func (r AddPartitions) transactionalID() string  { return r.TransactionalID }
func (r End) transactionalID() string            { return r.TransactionalID }
func (r Abort) transactionalID() string          { return r.TransactionalID }

// Input is one request; Token, chosen by the driver, comes back with its
// Response.
type Input struct {
	Token uint64
	Req   Request
}

// Response answers the Input that carried Token. ProducerID and
// ProducerEpoch are set for InitProducerID.
type Response struct {
	Token         uint64
	ProducerID    int64
	ProducerEpoch int16
	Err           error
}

// Append asks the driver to make one state record durable (keyed by
// TransactionalID in __transaction_state; a nil Meta is a tombstone) and
// to report it with AppendDone(ID). An id never has two Appends in
// flight, so records of one id reach the log in the order asked.
type Append struct {
	ID              uint64
	TransactionalID string
	Meta            *Meta
}

// MarkerWrite asks the driver to write Meta's transaction markers (commit
// or abort) to every partition and group of it, durably, and to report
// with MarkersDone(ID).
type MarkerWrite struct {
	ID     uint64
	Meta   *Meta
	Commit bool
}

// Ready is what one call produced for the driver to carry out. Appends
// and Markers may run concurrently with one another and with later calls;
// each is reported back once done. NeedProducerIDs asks for that many
// new producer ids, each reported back with ProducerID. Errors are
// failures nobody waits for (a completion or abort run by Tick or
// Loaded), for the driver to log. Deadline is when Tick must next be
// called for a waiting request (Unix ms), or 0.
type Ready struct {
	Appends         []Append
	Markers         []MarkerWrite
	Responses       []Response
	NeedProducerIDs int
	Errors          []error
	Deadline        int64
}

// idState is what the coordinator tracks for an id between calls.
type idState struct {
	busy    bool  // an append, marker write or producer-id allocation is in flight
	pending *Meta // the record being appended, if any
	// unknown is set when an append failed after the record may have
	// reached the log (ErrOutcomeUnknown): the id's state is what the
	// log says, which only a reload learns. Until then it is refused and
	// no write of it is verified.
	unknown bool
	parked  []parked
}

// parked is a request waiting for its id to be idle or its previous
// transaction to complete. deadline (0: none yet) is when a request that
// waits for a completion is answered CONCURRENT_TRANSACTIONS.
type parked struct {
	in       Input
	deadline int64
}

// Coordinator is the transaction coordinator's state machine. It is not
// safe for concurrent use, except View: the driver serialises calls.
type Coordinator struct {
	cfg  Config
	txns map[string]*Meta
	ids  map[string]*idState

	nextEffect uint64
	inflight   map[uint64]func(nowMs int64, err error)
	pidWaiters []func(nowMs int64, pid int64, err error)

	dirty     map[string]bool  // ids whose published view is out of date
	published map[string]int64 // id -> the producer id it is published under
	view      atomic.Pointer[View]
	closed    bool
	out       Ready
}

// New returns an empty coordinator; Replay loads it, Loaded starts it.
func New(cfg Config) *Coordinator {
	c := &Coordinator{
		cfg: cfg, txns: map[string]*Meta{}, ids: map[string]*idState{},
		inflight: map[uint64]func(int64, error){}, dirty: map[string]bool{}, published: map[string]int64{},
	}
	c.view.Store(emptyView)
	return c
}

// Replay loads one stored record (in log order); a nil meta removes.
func (c *Coordinator) Replay(id string, m *Meta) {
	if m == nil {
		delete(c.txns, id)
	} else {
		c.txns[id] = m
	}
	c.dirty[id] = true
}

// Loaded ends the replay and completes every transaction caught between
// its Prepare record and its Complete record, as the coordinator that
// crashed would have. A transaction that cannot be completed (a marker
// refused or not written) stays prepared for Tick to retry, and is
// reported in Ready.Errors: one transaction's trouble never keeps the
// coordinator, or the broker, from starting.
func (c *Coordinator) Loaded(nowMs int64) Ready {
	for _, id := range c.sortedIDs() {
		if m := c.txns[id]; preparing(m.Status) {
			c.completeInBackground(id, m, "complete")
		}
	}
	return c.ready()
}

// Step handles one request.
func (c *Coordinator) Step(nowMs int64, in Input) Ready {
	c.run(nowMs, parked{in: in})
	return c.ready()
}

// AppendDone reports that the Append with id is durable (err nil) or
// will never be.
func (c *Coordinator) AppendDone(nowMs int64, id uint64, err error) Ready {
	return c.done(nowMs, id, err)
}

// MarkersDone reports that the MarkerWrite with id is durable in every
// partition and group (err nil), or failed.
func (c *Coordinator) MarkersDone(nowMs int64, id uint64, err error) Ready {
	return c.done(nowMs, id, err)
}

func (c *Coordinator) done(nowMs int64, id uint64, err error) Ready {
	if f, ok := c.inflight[id]; ok && !c.closed {
		delete(c.inflight, id)
		f(nowMs, err)
	}
	return c.ready()
}

// ProducerID hands over one new producer id asked for by
// NeedProducerIDs, or the error that kept it from being allocated.
func (c *Coordinator) ProducerID(nowMs int64, pid int64, err error) Ready {
	if len(c.pidWaiters) > 0 && !c.closed {
		f := c.pidWaiters[0]
		c.pidWaiters = c.pidWaiters[1:]
		f(nowMs, pid, err)
	}
	return c.ready()
}

// Idle reports whether nothing the coordinator asked for is in flight.
func (c *Coordinator) Idle() bool { return len(c.inflight) == 0 && len(c.pidWaiters) == 0 }

// Close stops the coordinator: waiting requests are answered ErrClosed,
// later ones too, and reports of effects still in flight are ignored;
// completions still pending are left to recovery.
func (c *Coordinator) Close() Ready {
	c.closed = true
	for _, id := range c.sortedStateIDs() {
		for _, p := range c.ids[id].parked {
			c.respond(p.in.Token, ErrClosed)
		}
		delete(c.ids, id)
	}
	c.inflight, c.pidWaiters = map[uint64]func(int64, error){}, nil
	return c.ready()
}

// Tick expires waiting requests past their bound, finishes prepared
// transactions whose completion failed, aborts transactions open for
// longer than their timeout (fencing their producers) and forgets
// transactional ids idle past transactional.id.expiration.ms.
func (c *Coordinator) Tick(nowMs int64) Ready {
	if c.closed {
		return c.ready()
	}
	for _, id := range c.sortedStateIDs() {
		st := c.ids[id]
		kept := st.parked[:0]
		for _, p := range st.parked {
			if p.deadline != 0 && nowMs >= p.deadline {
				c.respond(p.in.Token, kerr.ConcurrentTransactions)
				continue
			}
			kept = append(kept, p)
		}
		st.parked = kept
		c.forget(id)
	}
	for _, id := range c.sortedIDs() {
		m := c.txns[id]
		if st := c.ids[id]; st != nil && (st.busy || st.unknown) {
			continue
		}
		switch {
		case preparing(m.Status):
			// Its completion failed (or has not run yet): finish it.
			c.completeInBackground(id, m, "complete")
		case m.Status == Ongoing && nowMs-m.StartMs > int64(m.TimeoutMs)+c.cfg.AbortTimedOutAfter:
			c.abortFencing(nowMs, m, nil, func(_ int64, err error) {
				if err != nil {
					c.out.Errors = append(c.out.Errors, fmt.Errorf("abort timed-out %q: %w", id, err))
				}
			})
		case (m.Status == Empty || m.Status == CompleteCommit || m.Status == CompleteAbort) && nowMs-m.UpdateMs > c.cfg.IDExpirationMs:
			c.put(id, nil, func(_ int64, err error) {
				if err != nil {
					c.out.Errors = append(c.out.Errors, fmt.Errorf("expire %q: %w", id, err))
				}
			})
		}
	}
	return c.ready()
}

// completeInBackground completes a prepared transaction for nobody in
// particular: a failure is reported in Ready.Errors and leaves it
// prepared for Tick.
func (c *Coordinator) completeInBackground(id string, m *Meta, what string) {
	c.complete(m, m.Status == PrepareCommit, func(_ int64, err error) {
		if err != nil {
			c.out.Errors = append(c.out.Errors, fmt.Errorf("%s %q: %w", what, id, err))
		}
	})
}

// Describe returns copies of the named transactions' state; unknown ids
// are absent.
func (c *Coordinator) Describe(ids []string) map[string]Meta {
	out := make(map[string]Meta, len(ids))
	for _, id := range ids {
		if m, ok := c.txns[id]; ok {
			out[id] = *m.clone()
		}
	}
	return out
}

// List returns every transaction's state, by id.
func (c *Coordinator) List() []Meta {
	out := make([]Meta, 0, len(c.txns))
	for _, m := range c.txns {
		out = append(out, *m.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out
}

// state returns id's state, creating it.
func (c *Coordinator) state(id string) *idState {
	st := c.ids[id]
	if st == nil {
		st = &idState{}
		c.ids[id] = st
	}
	return st
}

// forget drops id's state once nothing is in flight or waiting.
func (c *Coordinator) forget(id string) {
	if st := c.ids[id]; st != nil && !st.busy && !st.unknown && st.pending == nil && len(st.parked) == 0 {
		delete(c.ids, id)
	}
}

// put asks for next (nil: a tombstone) to be made durable and installs it
// once it is; done runs then, with the error if it failed. The id is busy
// meanwhile.
func (c *Coordinator) put(id string, next *Meta, done func(nowMs int64, err error)) {
	st := c.state(id)
	st.busy, st.pending = true, next
	c.dirty[id] = true
	var rec *Meta
	if next != nil {
		rec = next.clone()
	}
	c.nextEffect++
	c.out.Appends = append(c.out.Appends, Append{ID: c.nextEffect, TransactionalID: id, Meta: rec})
	c.inflight[c.nextEffect] = func(nowMs int64, err error) {
		st.busy, st.pending = false, nil
		c.dirty[id] = true
		if errors.Is(err, ErrOutcomeUnknown) {
			st.unknown = true
		}
		if err != nil {
			err = fmt.Errorf("%w: %v", kerr.CoordinatorNotAvailable, err)
		} else if next == nil {
			delete(c.txns, id)
		} else {
			c.txns[id] = next
		}
		done(nowMs, err)
		c.drain(nowMs, id)
	}
}

// writeMarkers asks for m's markers; done runs once they are durable or
// failed. The id is busy meanwhile.
func (c *Coordinator) writeMarkers(m *Meta, commit bool, done func(nowMs int64, err error)) {
	id := m.TransactionalID
	st := c.state(id)
	st.busy = true
	c.nextEffect++
	c.out.Markers = append(c.out.Markers, MarkerWrite{ID: c.nextEffect, Meta: m.clone(), Commit: commit})
	c.inflight[c.nextEffect] = func(nowMs int64, err error) {
		st.busy = false
		if err != nil {
			err = fmt.Errorf("%w: write markers: %v", kerr.CoordinatorNotAvailable, err)
		}
		done(nowMs, err)
		c.drain(nowMs, id)
	}
}

// withProducerID asks for a new producer id; done runs with it. The id is
// busy meanwhile.
func (c *Coordinator) withProducerID(id string, done func(nowMs int64, pid int64, err error)) {
	st := c.state(id)
	st.busy = true
	c.out.NeedProducerIDs++
	c.pidWaiters = append(c.pidWaiters, func(nowMs int64, pid int64, err error) {
		st.busy = false
		done(nowMs, pid, err)
		c.drain(nowMs, id)
	})
}

// drain runs the requests parked on id once it is idle.
func (c *Coordinator) drain(nowMs int64, id string) {
	st := c.ids[id]
	if st == nil || st.busy || c.closed {
		return
	}
	waiting := st.parked
	st.parked = nil
	for _, p := range waiting {
		c.run(nowMs, p)
	}
	c.forget(id)
}

// run handles a request now, or parks it while its id is busy.
func (c *Coordinator) run(nowMs int64, p parked) {
	if c.closed {
		c.respond(p.in.Token, ErrClosed)
		return
	}
	id := p.in.Req.transactionalID()
	if st := c.ids[id]; st != nil && st.unknown {
		c.respond(p.in.Token, fmt.Errorf("%w: the state of %q is being reloaded", kerr.CoordinatorNotAvailable, id))
		return
	}
	if st := c.ids[id]; st != nil && st.busy {
		if c.completing(id) {
			c.concurrent(nowMs, p)
			return
		}
		st.parked = append(st.parked, p)
		return
	}
	switch r := p.in.Req.(type) {
	case InitProducerID:
		c.initProducerID(nowMs, p.in.Token, r)
	case AddPartitions:
		c.addPartitions(nowMs, p, r)
	case End:
		c.end(nowMs, p, r)
	case Abort:
		c.abort(nowMs, p, r)
	default:
		panic(fmt.Sprintf("txn: unknown request %T", p.in.Req))
	}
	c.forget(id)
}

// completing reports whether id's transaction is prepared (or being
// prepared) and not yet complete.
func (c *Coordinator) completing(id string) bool {
	if st := c.ids[id]; st != nil && st.pending != nil && preparing(st.pending.Status) {
		return true
	}
	m, ok := c.txns[id]
	return ok && preparing(m.Status)
}

// concurrent handles a request that found its id's previous transaction
// still completing: it waits for up to SettleWaitMs, then is answered
// CONCURRENT_TRANSACTIONS.
func (c *Coordinator) concurrent(nowMs int64, p parked) {
	if c.cfg.SettleWaitMs <= 0 || (p.deadline != 0 && nowMs >= p.deadline) {
		c.respond(p.in.Token, kerr.ConcurrentTransactions)
		return
	}
	if p.deadline == 0 {
		p.deadline = nowMs + c.cfg.SettleWaitMs
	}
	st := c.state(p.in.Req.transactionalID())
	st.parked = append(st.parked, p)
}

func (c *Coordinator) respond(token uint64, err error) {
	c.out.Responses = append(c.out.Responses, Response{Token: token, ProducerID: -1, ProducerEpoch: -1, Err: err})
}

func (c *Coordinator) ready() Ready {
	if len(c.dirty) > 0 {
		c.publish()
	}
	rd := c.out
	c.out = Ready{}
	for _, st := range c.ids {
		for _, p := range st.parked {
			if p.deadline != 0 && (rd.Deadline == 0 || p.deadline < rd.Deadline) {
				rd.Deadline = p.deadline
			}
		}
	}
	return rd
}

func (c *Coordinator) sortedIDs() []string {
	ids := make([]string, 0, len(c.txns))
	for id := range c.txns {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (c *Coordinator) sortedStateIDs() []string {
	ids := make([]string, 0, len(c.ids))
	for id := range c.ids {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
