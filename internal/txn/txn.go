// Package txn is the transaction coordinator (KIP-98): for each
// transactional id, the producer id and epoch that own it, the partitions
// and groups of its open transaction, and the state of that transaction.
//
// The coordinator decides; its driver does the I/O. Every change is made
// durable through Store before it takes effect or is answered, and the
// markers that end a transaction are written through Markers between the
// PrepareCommit/PrepareAbort record and the CompleteCommit/CompleteAbort
// record, so a crash at any point leaves a state that recovery finishes:
// a transaction found in a Prepare state at start has its markers written
// (again; writing a marker twice is harmless) and is completed.
//
// Time comes in as nowMs arguments; nothing here reads a clock.
package txn

import (
	"fmt"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Status is where a transactional id's current transaction stands.
type Status string

// Statuses, named as Kafka's ListTransactions reports them.
const (
	Empty          Status = "Empty"
	Ongoing        Status = "Ongoing"
	PrepareCommit  Status = "PrepareCommit"
	PrepareAbort   Status = "PrepareAbort"
	CompleteCommit Status = "CompleteCommit"
	CompleteAbort  Status = "CompleteAbort"
)

// TopicPartition names a partition in a transaction.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Meta is the durable state of one transactional id.
type Meta struct {
	TransactionalID string           `json:"transactionalId"`
	ProducerID      int64            `json:"producerId"`
	ProducerEpoch   int16            `json:"producerEpoch"`
	TimeoutMs       int32            `json:"timeoutMs"`
	Status          Status           `json:"status"`
	Partitions      []TopicPartition `json:"partitions,omitempty"`
	Groups          []string         `json:"groups,omitempty"`
	StartMs         int64            `json:"startMs"`  // when the open transaction began
	UpdateMs        int64            `json:"updateMs"` // last change
	// Last is the producer id and epoch an InitProducerId presented when
	// it bumped them to the current ones (KIP-360). A retry of that
	// request, whose answer was lost, presents them again and is answered
	// with the current ones instead of being fenced. Nil when the current
	// pair came from anything else (a new instance, a timeout's abort).
	Last *ProducerIDEpoch `json:"last,omitempty"`
}

// ProducerIDEpoch is a producer id and epoch.
type ProducerIDEpoch struct {
	ProducerID    int64 `json:"producerId"`
	ProducerEpoch int16 `json:"producerEpoch"`
}

func (m *Meta) clone() *Meta {
	c := *m
	c.Partitions = append([]TopicPartition(nil), m.Partitions...)
	c.Groups = append([]string(nil), m.Groups...)
	if m.Last != nil {
		last := *m.Last
		c.Last = &last
	}
	return &c
}

// Store makes a Meta durable (a record keyed by transactional id in
// __transaction_state); a nil Meta with an id removes it.
type Store interface {
	Put(id string, m *Meta) error
}

// Markers writes a transaction's markers to its partitions and completes
// its group offsets, durably, before returning.
type Markers interface {
	WriteMarkers(m *Meta, commit bool) error
}

// ProducerIDs hands out new producer ids.
type ProducerIDs interface {
	Next() (int64, error)
}

// Config holds the coordinator's limits.
type Config struct {
	MaxTimeoutMs        int64 // transaction.max.timeout.ms
	IDExpirationMs      int64 // transactional.id.expiration.ms
	AbortTimedOutAfter  int64 // grace past the timeout before aborting, ms
	MaxPartitionsPerTxn int
}

// Coordinator is the transaction coordinator. Its mutex serialises every
// operation, including the durable writes each makes. No operation waits
// for another: one that finds a transaction still being completed is
// answered CONCURRENT_TRANSACTIONS, and Settled tells the driver when to
// try again.
type Coordinator struct {
	mu      sync.Mutex
	cfg     Config
	store   Store
	markers Markers
	pids    ProducerIDs
	txns    map[string]*Meta
	byPID   map[int64]string // producer id -> transactional id (may be stale: check)
	// settling holds, for each id whose transaction is being completed
	// and that Settled was asked about, a channel closed once it is not.
	settling map[string]chan struct{}
	closed   bool
}

// ErrClosed answers every request that would change state once the
// coordinator is closed; clients look for the coordinator again.
var ErrClosed = kerr.NotCoordinator

// New returns a coordinator over the given effects.
func New(cfg Config, store Store, markers Markers, pids ProducerIDs) *Coordinator {
	return &Coordinator{
		cfg: cfg, store: store, markers: markers, pids: pids,
		txns: make(map[string]*Meta), byPID: make(map[int64]string),
		settling: make(map[string]chan struct{}),
	}
}

func preparing(s Status) bool { return s == PrepareCommit || s == PrepareAbort }

// closedCh is what Settled returns when there is nothing to wait for.
var closedCh = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// Settled returns a channel that is closed once id's transaction is no
// longer being completed (its EndTxn was answered once PrepareCommit or
// PrepareAbort was durable, and its markers are being written), or once
// the coordinator is closed. It is closed already when neither applies.
func (c *Coordinator) Settled(id string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.txns[id]; c.closed || !ok || !preparing(m.Status) {
		return closedCh
	}
	ch := c.settling[id]
	if ch == nil {
		ch = make(chan struct{})
		c.settling[id] = ch
	}
	return ch
}

// settledLocked wakes whoever waits on id's transaction being completed.
func (c *Coordinator) settledLocked(id string) {
	if ch, ok := c.settling[id]; ok {
		close(ch)
		delete(c.settling, id)
	}
}

// Close stops the coordinator: every Settled channel is closed, later
// requests that would change state get ErrClosed, and completions still
// pending are left to recovery. It waits for an operation in progress.
func (c *Coordinator) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for id := range c.settling {
		c.settledLocked(id)
	}
}

// Replay loads one stored record (in log order); a nil meta removes.
func (c *Coordinator) Replay(id string, m *Meta) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m == nil {
		delete(c.txns, id)
		return
	}
	c.txns[id] = m
	c.byPID[m.ProducerID] = id
}

// Recover completes every transaction caught between its Prepare record
// and its Complete record, as the coordinator that crashed would have.
//
// A transaction it cannot complete (a marker refused or not written)
// stays prepared, for Tick to retry, and is reported among the returned
// errors: one transaction's trouble never keeps the coordinator, or the
// broker, from starting.
func (c *Coordinator) Recover(nowMs int64) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return []error{ErrClosed}
	}
	var errs []error
	for _, m := range c.txns {
		switch m.Status {
		case PrepareCommit, PrepareAbort:
			if err := c.completeLocked(m, m.Status == PrepareCommit, nowMs); err != nil {
				errs = append(errs, fmt.Errorf("complete %q: %w", m.TransactionalID, err))
			}
		}
	}
	return errs
}

// put makes next durable and then installs it.
func (c *Coordinator) put(next *Meta) error {
	if err := c.store.Put(next.TransactionalID, next); err != nil {
		return fmt.Errorf("%w: %v", kerr.CoordinatorNotAvailable, err)
	}
	c.txns[next.TransactionalID] = next
	c.byPID[next.ProducerID] = next.TransactionalID
	if !preparing(next.Status) {
		c.settledLocked(next.TransactionalID)
	}
	return nil
}

// bumpEpoch returns the producer id and epoch after an epoch bump: a new
// producer id once the epoch would reach its maximum.
func (c *Coordinator) bumpEpoch(m *Meta) (int64, int16, error) {
	if m.ProducerEpoch < 1<<15-2 {
		return m.ProducerID, m.ProducerEpoch + 1, nil
	}
	id, err := c.pids.Next()
	return id, 0, err
}

// InitProducerID serves InitProducerId with a transactional id: a new id
// gets a producer id at epoch 0; a known one has its epoch bumped, which
// fences every older instance, and any transaction it left open is
// aborted first. With a producer id and epoch given (KIP-360), they must
// be the current ones, or the ones the last bump was asked with: that is
// a retry of the bump, answered with the current pair and no new bump.
func (c *Coordinator) InitProducerID(id string, timeoutMs int32, pid int64, epoch int16, nowMs int64) (int64, int16, error) {
	if timeoutMs <= 0 || int64(timeoutMs) > c.cfg.MaxTimeoutMs {
		return -1, -1, kerr.InvalidTransactionTimeout
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return -1, -1, ErrClosed
	}
	m, ok := c.txns[id]
	if !ok {
		newID, err := c.pids.Next()
		if err != nil {
			return -1, -1, err
		}
		next := &Meta{TransactionalID: id, ProducerID: newID, ProducerEpoch: 0, TimeoutMs: timeoutMs, Status: Empty, StartMs: -1, UpdateMs: nowMs}
		if err := c.put(next); err != nil {
			return -1, -1, err
		}
		return newID, 0, nil
	}
	if pid >= 0 && (pid != m.ProducerID || epoch != m.ProducerEpoch) {
		if m.Last != nil && *m.Last == (ProducerIDEpoch{pid, epoch}) {
			return m.ProducerID, m.ProducerEpoch, nil
		}
		return -1, -1, kerr.ProducerFenced
	}
	switch m.Status {
	case PrepareCommit, PrepareAbort:
		if err := c.completeLocked(m, m.Status == PrepareCommit, nowMs); err != nil {
			return -1, -1, err
		}
	case Ongoing:
		// The previous instance left a transaction open: abort it at a
		// bumped epoch so that instance is fenced from the partitions too.
		// When the producer itself asked for the bump (KIP-360), the abort
		// remembers its pair already: a retry after a crash between the
		// abort and the bump is answered, not fenced.
		var last *ProducerIDEpoch
		if pid >= 0 {
			last = &ProducerIDEpoch{pid, epoch}
		}
		if err := c.abortFencingLocked(m, nowMs, last); err != nil {
			return -1, -1, err
		}
	}
	m = c.txns[id]
	next := m.clone()
	var err error
	if next.ProducerID, next.ProducerEpoch, err = c.bumpEpoch(m); err != nil {
		return -1, -1, err
	}
	next.TimeoutMs, next.Status, next.Partitions, next.Groups, next.StartMs, next.UpdateMs = timeoutMs, Empty, nil, nil, -1, nowMs
	next.Last = nil
	if pid >= 0 {
		// Remembered durably, so the retry is recognised after a restart
		// and across a new producer id (the epoch was exhausted).
		next.Last = &ProducerIDEpoch{pid, epoch}
	}
	if err := c.put(next); err != nil {
		return -1, -1, err
	}
	return next.ProducerID, next.ProducerEpoch, nil
}

// check finds the transaction of id and verifies the caller owns it.
func (c *Coordinator) checkLocked(id string, pid int64, epoch int16) (*Meta, error) {
	m, ok := c.txns[id]
	switch {
	case !ok || m.ProducerID != pid:
		return nil, kerr.InvalidProducerIDMapping
	case epoch < m.ProducerEpoch:
		return nil, kerr.ProducerFenced
	case epoch > m.ProducerEpoch:
		return nil, kerr.InvalidProducerEpoch
	}
	return m, nil
}

// AddPartitions adds partitions (and groups, for AddOffsetsToTxn) to the
// open transaction, opening one if none is. While the previous
// transaction is still being completed it answers CONCURRENT_TRANSACTIONS
// (retriable): the next one starts once its markers are written.
func (c *Coordinator) AddPartitions(id string, pid int64, epoch int16, parts []TopicPartition, groups []string, nowMs int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	m, err := c.checkLocked(id, pid, epoch)
	if err != nil {
		return err
	}
	switch m.Status {
	case PrepareCommit, PrepareAbort:
		return kerr.ConcurrentTransactions
	}
	next := m.clone()
	if m.Status != Ongoing {
		next.Partitions, next.Groups, next.StartMs = nil, nil, nowMs
	}
	added := false
	for _, tp := range parts {
		if !containsTP(next.Partitions, tp) {
			next.Partitions = append(next.Partitions, tp)
			added = true
		}
	}
	for _, g := range groups {
		if !containsString(next.Groups, g) {
			next.Groups = append(next.Groups, g)
			added = true
		}
	}
	if c.cfg.MaxPartitionsPerTxn > 0 && len(next.Partitions) > c.cfg.MaxPartitionsPerTxn {
		return kerr.InvalidRequest
	}
	if m.Status == Ongoing && !added {
		return nil // a retry: already durable
	}
	next.Status, next.UpdateMs = Ongoing, nowMs
	sortTPs(next.Partitions)
	return c.put(next)
}

// InTransaction reports whether tp is part of producer pid's open
// transaction at epoch: the KIP-890 check made before a transactional
// batch is appended, so a late retry cannot land in a later transaction.
func (c *Coordinator) InTransaction(pid int64, epoch int16, tp TopicPartition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.txns[c.byPID[pid]]
	switch {
	case !ok || m.ProducerID != pid:
		return kerr.InvalidProducerIDMapping
	case epoch != m.ProducerEpoch:
		return kerr.InvalidProducerEpoch
	case m.Status != Ongoing || !containsTP(m.Partitions, tp):
		return kerr.InvalidTxnState
	}
	return nil
}

// GroupInTransaction reports whether group was added (AddOffsetsToTxn) to
// producer pid's open transaction at epoch: checked before a
// TxnOffsetCommit is written, as KIP-890 checks data writes.
func (c *Coordinator) GroupInTransaction(id string, pid int64, epoch int16, group string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.checkLocked(id, pid, epoch)
	if err != nil {
		return err
	}
	if m.Status != Ongoing || !containsString(m.Groups, group) {
		return kerr.InvalidTxnState
	}
	return nil
}

// End commits or aborts the open transaction (EndTxn). The outcome is
// decided, and answered, once PrepareCommit or PrepareAbort is durable:
// from then on recovery would finish it the same way. The markers and the
// Complete record are written right after, by another goroutine; until
// they are, AddPartitions and End for this id answer
// CONCURRENT_TRANSACTIONS. A retry of an end that went the same way
// succeeds once it is complete.
func (c *Coordinator) End(id string, pid int64, epoch int16, commit bool, nowMs int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	m, err := c.checkLocked(id, pid, epoch)
	if err != nil {
		return err
	}
	switch {
	case preparing(m.Status):
		return kerr.ConcurrentTransactions
	case m.Status == Ongoing:
	case m.Status == CompleteCommit && commit, m.Status == CompleteAbort && !commit:
		return nil
	case m.Status == Empty && !commit:
		return nil // nothing was added: nothing to abort
	default:
		return kerr.InvalidTxnState
	}
	next, err := c.prepareLocked(m, commit, nowMs)
	if err != nil {
		return err
	}
	go c.finish(next, commit)
	return nil
}

// finish completes a prepared transaction unless something else (a
// retry, InitProducerId, Tick) already has. A failure leaves it prepared
// for Tick to retry.
func (c *Coordinator) finish(prepared *Meta, commit bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.txns[prepared.TransactionalID]; m == prepared && !c.closed {
		_ = c.completeLocked(m, commit, m.UpdateMs)
	}
}

// endLocked writes Prepare, the markers, then Complete, all before it
// returns.
func (c *Coordinator) endLocked(m *Meta, commit bool, nowMs int64) error {
	next, err := c.prepareLocked(m, commit, nowMs)
	if err != nil {
		return err
	}
	return c.completeLocked(next, commit, nowMs)
}

// prepareLocked makes PrepareCommit or PrepareAbort durable.
func (c *Coordinator) prepareLocked(m *Meta, commit bool, nowMs int64) (*Meta, error) {
	next := m.clone()
	next.Status, next.UpdateMs = PrepareAbort, nowMs
	if commit {
		next.Status = PrepareCommit
	}
	if err := c.put(next); err != nil {
		return nil, err
	}
	return next, nil
}

func (c *Coordinator) completeLocked(m *Meta, commit bool, nowMs int64) error {
	if err := c.markers.WriteMarkers(m, commit); err != nil {
		return fmt.Errorf("%w: write markers: %v", kerr.CoordinatorNotAvailable, err)
	}
	next := m.clone()
	next.Status, next.Partitions, next.Groups, next.StartMs, next.UpdateMs = CompleteAbort, nil, nil, -1, nowMs
	if commit {
		next.Status = CompleteCommit
	}
	return c.put(next)
}

// abortFencingLocked aborts m's open transaction at a bumped epoch, so the
// producer that opened it can write no more (its epoch is now old both
// here and at every partition, through the markers). last is the pair of
// the InitProducerId that asked for the bump, or nil.
func (c *Coordinator) abortFencingLocked(m *Meta, nowMs int64, last *ProducerIDEpoch) error {
	next := m.clone()
	var err error
	if next.ProducerID, next.ProducerEpoch, err = c.bumpEpoch(m); err != nil {
		return err
	}
	if next.ProducerID != m.ProducerID {
		// The epoch was exhausted: the markers must still carry the id
		// that wrote the data, at an epoch above its last.
		next.ProducerID, next.ProducerEpoch = m.ProducerID, m.ProducerEpoch+1
	}
	next.Last = last
	return c.endLocked(next, false, nowMs)
}

// Tick finishes prepared transactions whose completion failed, aborts
// transactions open for longer than their timeout (fencing their
// producers) and forgets transactional ids idle past
// transactional.id.expiration.ms.
func (c *Coordinator) Tick(nowMs int64) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	var errs []error
	for id, m := range c.txns {
		switch {
		case preparing(m.Status):
			// Its completion failed (or has not run yet): finish it.
			if err := c.completeLocked(m, m.Status == PrepareCommit, nowMs); err != nil {
				errs = append(errs, fmt.Errorf("complete %q: %w", id, err))
			}
		case m.Status == Ongoing && nowMs-m.StartMs > int64(m.TimeoutMs)+c.cfg.AbortTimedOutAfter:
			if err := c.abortFencingLocked(m, nowMs, nil); err != nil {
				errs = append(errs, fmt.Errorf("abort timed-out %q: %w", id, err))
			}
		case (m.Status == Empty || m.Status == CompleteCommit || m.Status == CompleteAbort) && nowMs-m.UpdateMs > c.cfg.IDExpirationMs:
			if err := c.store.Put(id, nil); err != nil {
				errs = append(errs, fmt.Errorf("expire %q: %w", id, err))
				continue
			}
			delete(c.txns, id)
		}
	}
	return errs
}

// Describe returns copies of the named transactions' state; unknown ids
// are absent.
func (c *Coordinator) Describe(ids []string) map[string]Meta {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Meta, 0, len(c.txns))
	for _, m := range c.txns {
		out = append(out, *m.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out
}

func containsTP(tps []TopicPartition, tp TopicPartition) bool {
	for _, x := range tps {
		if x == tp {
			return true
		}
	}
	return false
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func sortTPs(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}
