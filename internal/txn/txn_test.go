package txn

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// effects records what the coordinator asks its driver to do.
type effects struct {
	puts    []Meta
	markers []string // "commit pid/epoch" or "abort pid/epoch"
	nextPID int64
}

func (e *effects) Put(id string, m *Meta) error {
	if m != nil {
		e.puts = append(e.puts, *m)
	}
	return nil
}

func (e *effects) WriteMarkers(m *Meta, commit bool) error {
	kind := "abort"
	if commit {
		kind = "commit"
	}
	e.markers = append(e.markers, kind)
	return nil
}

func (e *effects) Next() (int64, error) { e.nextPID++; return e.nextPID, nil }

func newCoordinator() (*Coordinator, *effects) {
	e := &effects{}
	return New(Config{MaxTimeoutMs: 60000, IDExpirationMs: 1000000}, e, e, e), e
}

var tp = TopicPartition{Topic: "t", Partition: 0}

// The life of a transactional id: init, add, commit (and its retry), a
// second instance fencing the first and aborting what it left open.
func TestTransactionalIDLifecycle(t *testing.T) {
	c, e := newCoordinator()
	pid, epoch, err := c.InitProducerID("a", 10000, -1, -1, 0)
	if err != nil || pid != 1 || epoch != 0 {
		t.Fatalf("first init: %d/%d %v", pid, epoch, err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.InTransaction(pid, epoch, tp); err != nil {
		t.Fatalf("partition in transaction: %v", err)
	}
	if err := c.InTransaction(pid, epoch, TopicPartition{"t", 1}); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("partition not added: %v", err)
	}
	if err := c.End("a", pid, epoch, true, 2); err != nil {
		t.Fatal(err)
	}
	<-c.Settled("a")
	if err := c.End("a", pid, epoch, true, 3); err != nil {
		t.Fatalf("retried commit: %v", err)
	}
	if err := c.End("a", pid, epoch, false, 3); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("abort after commit: %v", err)
	}
	if len(e.markers) != 1 || e.markers[0] != "commit" {
		t.Fatalf("markers %v", e.markers)
	}
	// Prepare is durable before the markers, Complete after.
	n := len(e.puts)
	if e.puts[n-2].Status != PrepareCommit || e.puts[n-1].Status != CompleteCommit {
		t.Fatalf("last puts %v %v", e.puts[n-2].Status, e.puts[n-1].Status)
	}

	// The first instance opens another transaction, then a second
	// instance starts: the open transaction is aborted at a bumped epoch
	// and the new instance gets the next.
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 4); err != nil {
		t.Fatal(err)
	}
	pid2, epoch2, err := c.InitProducerID("a", 10000, -1, -1, 5)
	if err != nil || pid2 != pid || epoch2 != epoch+2 {
		t.Fatalf("second init: %d/%d %v", pid2, epoch2, err)
	}
	if e.markers[len(e.markers)-1] != "abort" {
		t.Fatalf("open transaction not aborted: %v", e.markers)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 6); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("zombie add: %v", err)
	}
	if err := c.End("a", pid, epoch, true, 6); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("zombie commit: %v", err)
	}
	if _, _, err := c.InitProducerID("a", 10000, pid, epoch, 7); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("KIP-360 init with a stale epoch: %v", err)
	}
}

// A transaction open longer than its timeout is aborted by Tick at a
// bumped epoch, which fences its producer.
func TestTimedOutTransactionIsAborted(t *testing.T) {
	c, e := newCoordinator()
	pid, epoch, _ := c.InitProducerID("a", 1000, -1, -1, 0)
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 100); err != nil {
		t.Fatal(err)
	}
	if errs := c.Tick(1000); len(errs) != 0 || len(e.markers) != 0 {
		t.Fatalf("aborted before the timeout: %v %v", errs, e.markers)
	}
	c.Tick(1101)
	if len(e.markers) != 1 || e.markers[0] != "abort" {
		t.Fatalf("markers after the timeout: %v", e.markers)
	}
	if err := c.End("a", pid, epoch, true, 1200); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("commit after the timeout abort: %v", err)
	}
}

// Recovery completes a transaction found between Prepare and Complete.
func TestRecoverCompletesPreparedTransactions(t *testing.T) {
	c, e := newCoordinator()
	c.Replay("a", &Meta{TransactionalID: "a", ProducerID: 7, ProducerEpoch: 3, TimeoutMs: 1000, Status: PrepareCommit, Partitions: []TopicPartition{tp}})
	c.Replay("b", &Meta{TransactionalID: "b", ProducerID: 8, Status: CompleteAbort})
	if err := errors.Join(c.Recover(10)...); err != nil {
		t.Fatal(err)
	}
	if len(e.markers) != 1 || e.markers[0] != "commit" {
		t.Fatalf("markers %v", e.markers)
	}
	if got := c.Describe([]string{"a"})["a"]; got.Status != CompleteCommit || len(got.Partitions) != 0 {
		t.Fatalf("after recovery: %+v", got)
	}
}

func TestInitRejectsTimeoutsAboveTheMaximum(t *testing.T) {
	c, _ := newCoordinator()
	if _, _, err := c.InitProducerID("a", 60001, -1, -1, 0); !errors.Is(err, kerr.InvalidTransactionTimeout) {
		t.Fatalf("timeout above transaction.max.timeout.ms: %v", err)
	}
}

// KIP-360: an InitProducerId that bumped the epoch but whose answer was
// lost is retried with the producer id and epoch it presented. The retry
// is answered with the current id and epoch, without bumping again (which
// would fence the very producer that asked), also after a restart of the
// coordinator. Any other old pair is still fenced.
func TestRetriedEpochBumpIsAnsweredAgain(t *testing.T) {
	c, e := newCoordinator()
	pid, epoch, err := c.InitProducerID("a", 10000, -1, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	// The producer recovers (KIP-360) from an abortable error: its open
	// transaction is aborted and its epoch bumped. The answer is lost.
	bumpedPID, bumped, err := c.InitProducerID("a", 10000, pid, epoch, 2)
	if err != nil || bumpedPID != pid || bumped <= epoch {
		t.Fatalf("bump: %d/%d %v", bumpedPID, bumped, err)
	}
	puts := len(e.puts)
	gotPID, got, err := c.InitProducerID("a", 10000, pid, epoch, 3)
	if err != nil || gotPID != bumpedPID || got != bumped {
		t.Fatalf("retried bump: %d/%d %v, want %d/%d", gotPID, got, err, bumpedPID, bumped)
	}
	if len(e.puts) != puts {
		t.Fatalf("the retry changed the state: %+v", e.puts[puts:])
	}

	// The same after the coordinator restarts from its stored records.
	c2, _ := newCoordinator()
	c2.Replay("a", &e.puts[len(e.puts)-1])
	if gotPID, got, err := c2.InitProducerID("a", 10000, pid, epoch, 4); err != nil || gotPID != bumpedPID || got != bumped {
		t.Fatalf("retried bump after a restart: %d/%d %v, want %d/%d", gotPID, got, err, bumpedPID, bumped)
	}

	// A pair older than the one that asked for the last bump is fenced.
	if _, _, err := c.InitProducerID("a", 10000, bumpedPID, bumped, 5); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.InitProducerID("a", 10000, pid, epoch, 6); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("a pair two bumps old: %v", err)
	}
}

// A new instance (InitProducerId without a producer id) fences the old
// one: a retry of the old instance's last bump no longer gets in.
func TestNewInstanceFencesARetriedEpochBump(t *testing.T) {
	c, _ := newCoordinator()
	pid, epoch, _ := c.InitProducerID("a", 10000, -1, -1, 0)
	if _, _, err := c.InitProducerID("a", 10000, pid, epoch, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.InitProducerID("a", 10000, -1, -1, 2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.InitProducerID("a", 10000, pid, epoch, 3); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("retry after a new instance: %v", err)
	}
}

// When the epoch is exhausted the bump hands out a new producer id; a
// retry presenting the old id and its last epoch still gets the new id.
func TestRetriedEpochBumpAcrossProducerIDRollover(t *testing.T) {
	c, e := newCoordinator()
	const oldPID, lastEpoch = 7, int16(1<<15 - 2)
	c.Replay("a", &Meta{TransactionalID: "a", ProducerID: oldPID, ProducerEpoch: lastEpoch, TimeoutMs: 10000, Status: CompleteCommit, StartMs: -1})
	e.nextPID = 20
	newPID, epoch, err := c.InitProducerID("a", 10000, oldPID, lastEpoch, 1)
	if err != nil || newPID != 21 || epoch != 0 {
		t.Fatalf("bump at the last epoch: %d/%d %v", newPID, epoch, err)
	}
	if gotPID, got, err := c.InitProducerID("a", 10000, oldPID, lastEpoch, 2); err != nil || gotPID != newPID || got != epoch {
		t.Fatalf("retried bump: %d/%d %v, want %d/%d", gotPID, got, err, newPID, epoch)
	}
	if e.nextPID != 21 {
		t.Fatalf("the retry allocated another producer id (%d)", e.nextPID)
	}
	if _, _, err := c.InitProducerID("a", 10000, oldPID, lastEpoch-1, 3); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("an older epoch of the old id: %v", err)
	}
}

// failingMarkers is a driver whose marker writes fail until told
// otherwise; the finishing goroutine calls it, so it locks.
type failingMarkers struct {
	mu      sync.Mutex
	fail    bool
	nextPID int64
	writes  int
}

func (f *failingMarkers) Put(string, *Meta) error { return nil }

func (f *failingMarkers) WriteMarkers(*Meta, bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.fail {
		return errors.New("disk full")
	}
	return nil
}

func (f *failingMarkers) Next() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextPID++
	return f.nextPID, nil
}

// While a transaction's markers cannot be written, the next
// AddPartitions of its producer is answered CONCURRENT_TRANSACTIONS,
// which clients retry, instead of waiting (on the connection's reader
// goroutine) for as long as the markers keep failing.
func TestAddPartitionsDoesNotWaitForFailingMarkers(t *testing.T) {
	f := &failingMarkers{fail: true}
	c := New(Config{MaxTimeoutMs: 60000, IDExpirationMs: 1000000}, f, f, f)
	pid, epoch, _ := c.InitProducerID("a", 10000, -1, -1, 0)
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.End("a", pid, epoch, true, 2); err != nil {
		t.Fatalf("commit (decided once PrepareCommit is durable): %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 3) }()
	select {
	case err := <-done:
		if !errors.Is(err, kerr.ConcurrentTransactions) {
			t.Fatalf("AddPartitions while the commit cannot complete: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AddPartitions still waiting for markers that keep failing")
	}
	if err := c.End("a", pid, epoch, true, 3); !errors.Is(err, kerr.ConcurrentTransactions) {
		t.Fatalf("retried commit while it cannot complete: %v", err)
	}

	// Once the markers can be written, Tick completes the commit, wakes
	// whoever waits, and the next transaction starts.
	settled := c.Settled("a")
	select {
	case <-settled:
		t.Fatal("settled while still prepared")
	default:
	}
	f.mu.Lock()
	f.fail = false
	f.mu.Unlock()
	if errs := c.Tick(4); len(errs) != 0 {
		t.Fatal(errs)
	}
	<-settled
	if err := c.End("a", pid, epoch, true, 5); err != nil {
		t.Fatalf("retried commit once complete: %v", err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 5); err != nil {
		t.Fatal(err)
	}
}

// Closing the coordinator releases whoever waits for a transaction that
// cannot complete, and stops it from writing anything more.
func TestCloseReleasesWaiters(t *testing.T) {
	f := &failingMarkers{fail: true}
	c := New(Config{MaxTimeoutMs: 60000, IDExpirationMs: 1000000}, f, f, f)
	pid, epoch, _ := c.InitProducerID("a", 10000, -1, -1, 0)
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.End("a", pid, epoch, false, 2); err != nil {
		t.Fatal(err)
	}
	settled := c.Settled("a")
	c.Close()
	select {
	case <-settled:
	case <-time.After(10 * time.Second):
		t.Fatal("a waiter still blocked after Close")
	}
	f.mu.Lock()
	writes := f.writes
	f.mu.Unlock()
	if errs := c.Tick(1000); len(errs) != 0 {
		t.Fatalf("Tick after Close: %v", errs)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddPartitions after Close: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writes != writes {
		t.Fatalf("markers written after Close")
	}
}
