package txn

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

var tp = TopicPartition{Topic: "t", Partition: 0}

// The life of a transactional id: init, add, commit (and its retry), a
// second instance fencing the first and aborting what it left open.
func TestTransactionalIDLifecycle(t *testing.T) {
	c := newCoordinator(t)
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
	if err := c.End("a", pid, epoch, true, 3); err != nil {
		t.Fatalf("retried commit: %v", err)
	}
	if err := c.End("a", pid, epoch, false, 3); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("abort after commit: %v", err)
	}
	if len(c.markers) != 1 || c.markers[0] != "commit" {
		t.Fatalf("markers %v", c.markers)
	}
	// Prepare is durable before the markers, Complete after.
	n := len(c.puts)
	if c.puts[n-2].Status != PrepareCommit || c.puts[n-1].Status != CompleteCommit {
		t.Fatalf("last puts %v %v", c.puts[n-2].Status, c.puts[n-1].Status)
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
	if c.markers[len(c.markers)-1] != "abort" {
		t.Fatalf("open transaction not aborted: %v", c.markers)
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
	c := newCoordinator(t)
	pid, epoch, _ := c.InitProducerID("a", 1000, -1, -1, 0)
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 100); err != nil {
		t.Fatal(err)
	}
	if errs := c.Tick(1000); len(errs) != 0 || len(c.markers) != 0 {
		t.Fatalf("aborted before the timeout: %v %v", errs, c.markers)
	}
	c.Tick(1101)
	if len(c.markers) != 1 || c.markers[0] != "abort" {
		t.Fatalf("markers after the timeout: %v", c.markers)
	}
	if err := c.End("a", pid, epoch, true, 1200); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("commit after the timeout abort: %v", err)
	}
}

// Recovery completes a transaction found between Prepare and Complete.
func TestRecoverCompletesPreparedTransactions(t *testing.T) {
	c := newCoordinator(t)
	c.Replay("a", &Meta{TransactionalID: "a", ProducerID: 7, ProducerEpoch: 3, TimeoutMs: 1000, Status: PrepareCommit, Partitions: []TopicPartition{tp}})
	c.Replay("b", &Meta{TransactionalID: "b", ProducerID: 8, Status: CompleteAbort})
	if err := errors.Join(c.Loaded(10)...); err != nil {
		t.Fatal(err)
	}
	if len(c.markers) != 1 || c.markers[0] != "commit" {
		t.Fatalf("markers %v", c.markers)
	}
	if got := c.Describe([]string{"a"})["a"]; got.Status != CompleteCommit || len(got.Partitions) != 0 {
		t.Fatalf("after recovery: %+v", got)
	}
}

func TestInitRejectsTimeoutsAboveTheMaximum(t *testing.T) {
	c := newCoordinator(t)
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
	c := newCoordinator(t)
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
	puts := len(c.puts)
	gotPID, got, err := c.InitProducerID("a", 10000, pid, epoch, 3)
	if err != nil || gotPID != bumpedPID || got != bumped {
		t.Fatalf("retried bump: %d/%d %v, want %d/%d", gotPID, got, err, bumpedPID, bumped)
	}
	if len(c.puts) != puts {
		t.Fatalf("the retry changed the state: %+v", c.puts[puts:])
	}

	// The same after the coordinator restarts from its stored records.
	c2 := newCoordinator(t)
	c2.Replay("a", &c.puts[len(c.puts)-1])
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
	c := newCoordinator(t)
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
	c := newCoordinator(t)
	const oldPID, lastEpoch = 7, int16(1<<15 - 2)
	c.Replay("a", &Meta{TransactionalID: "a", ProducerID: oldPID, ProducerEpoch: lastEpoch, TimeoutMs: 10000, Status: CompleteCommit, StartMs: -1})
	c.nextPID = 20
	newPID, epoch, err := c.InitProducerID("a", 10000, oldPID, lastEpoch, 1)
	if err != nil || newPID != 21 || epoch != 0 {
		t.Fatalf("bump at the last epoch: %d/%d %v", newPID, epoch, err)
	}
	if gotPID, got, err := c.InitProducerID("a", 10000, oldPID, lastEpoch, 2); err != nil || gotPID != newPID || got != epoch {
		t.Fatalf("retried bump: %d/%d %v, want %d/%d", gotPID, got, err, newPID, epoch)
	}
	if c.nextPID != 21 {
		t.Fatalf("the retry allocated another producer id (%d)", c.nextPID)
	}
	if _, _, err := c.InitProducerID("a", 10000, oldPID, lastEpoch-1, 3); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("an older epoch of the old id: %v", err)
	}
}

// While a transaction's markers cannot be written, the next
// AddPartitions of its producer is answered CONCURRENT_TRANSACTIONS,
// which clients retry, instead of waiting for as long as the markers keep
// failing.
func TestAddPartitionsDoesNotWaitForFailingMarkers(t *testing.T) {
	c := newCoordinator(t)
	pid, epoch, _ := c.InitProducerID("a", 10000, -1, -1, 0)
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	c.failMarkers = 1 << 30
	if err := c.End("a", pid, epoch, true, 2); err != nil {
		t.Fatalf("commit (decided once PrepareCommit is durable): %v", err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 3); !errors.Is(err, kerr.ConcurrentTransactions) {
		t.Fatalf("AddPartitions while the commit cannot complete: %v", err)
	}
	if err := c.End("a", pid, epoch, true, 3); !errors.Is(err, kerr.ConcurrentTransactions) {
		t.Fatalf("retried commit while it cannot complete: %v", err)
	}

	// Once the markers can be written, Tick completes the commit and the
	// next transaction starts.
	if got := c.Describe([]string{"a"})["a"].Status; got != PrepareCommit {
		t.Fatalf("settled while still prepared: %s", got)
	}
	c.failMarkers = 0
	if errs := c.Tick(4); len(errs) != 0 {
		t.Fatal(errs)
	}
	if err := c.End("a", pid, epoch, true, 5); err != nil {
		t.Fatalf("retried commit once complete: %v", err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 5); err != nil {
		t.Fatal(err)
	}
}

// A request that finds its id's previous transaction completing waits
// for it, up to SettleWaitMs, and is then answered: served once the
// completion is durable, CONCURRENT_TRANSACTIONS at the bound. Other
// transactional ids are served meanwhile, and the KIP-890 view shows the
// completing transaction closed as soon as EndTxn is accepted.
func TestRequestsWaitForTheirOwnCompletionOnly(t *testing.T) {
	c := newHarness(t, Config{MaxTimeoutMs: 60000, IDExpirationMs: 1000000, SettleWaitMs: 1000})
	pid, epoch, _ := c.InitProducerID("a", 10000, -1, -1, 0)
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	c.holdMarkers = true
	if err := c.End("a", pid, epoch, true, 2); err != nil {
		t.Fatal(err)
	}
	if len(c.held) != 1 {
		t.Fatalf("marker writes asked for: %d", len(c.held))
	}
	if err := c.InTransaction(pid, epoch, tp); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("write verified into a committing transaction: %v", err)
	}
	tokAdd := c.send(3, AddPartitions{TransactionalID: "a", ProducerID: pid, ProducerEpoch: epoch, Partitions: []TopicPartition{tp}})
	if r, ok := c.answer(tokAdd); ok {
		t.Fatalf("AddPartitions answered while the commit completes: %v", r.Err)
	}
	// Another id is served at once.
	bPID, bEpoch, err := c.InitProducerID("b", 10000, -1, -1, 4)
	if err != nil {
		t.Fatalf("unrelated InitProducerID: %v", err)
	}
	if err := c.AddPartitions("b", bPID, bEpoch, []TopicPartition{tp}, nil, 5); err != nil {
		t.Fatalf("unrelated AddPartitions: %v", err)
	}
	if err := c.InTransaction(bPID, bEpoch, tp); err != nil {
		t.Fatalf("unrelated verification: %v", err)
	}
	// The completion lands: the waiting AddPartitions opens the next
	// transaction.
	c.releaseMarkers(6)
	if r, ok := c.answer(tokAdd); !ok || r.Err != nil {
		t.Fatalf("AddPartitions after the completion: %v %v", ok, r.Err)
	}
	if err := c.InTransaction(pid, epoch, tp); err != nil {
		t.Fatalf("next transaction: %v", err)
	}

	// A completion that does not land in time: the waiting request is
	// answered CONCURRENT_TRANSACTIONS at the bound.
	if err := c.End("a", pid, epoch, false, 10); err != nil {
		t.Fatal(err)
	}
	tokEnd := c.send(11, End{TransactionalID: "a", ProducerID: pid, ProducerEpoch: epoch, Commit: false})
	rd := c.c.Tick(500)
	c.apply(500, rd)
	if _, ok := c.answer(tokEnd); ok {
		t.Fatal("answered before the bound")
	}
	if rd.Deadline != 1011 {
		t.Fatalf("deadline %d, want 1011", rd.Deadline)
	}
	c.Tick(1011)
	if r, ok := c.answer(tokEnd); !ok || !errors.Is(r.Err, kerr.ConcurrentTransactions) {
		t.Fatalf("at the bound: %v %v", ok, r.Err)
	}
}

// Closing the coordinator answers whoever waits for a transaction that
// cannot complete, and stops it from asking for anything more.
func TestCloseReleasesWaiters(t *testing.T) {
	c := newHarness(t, Config{MaxTimeoutMs: 60000, IDExpirationMs: 1000000, SettleWaitMs: 1000})
	pid, epoch, _ := c.InitProducerID("a", 10000, -1, -1, 0)
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	c.holdMarkers = true
	if err := c.End("a", pid, epoch, false, 2); err != nil {
		t.Fatal(err)
	}
	tok := c.send(3, AddPartitions{TransactionalID: "a", ProducerID: pid, ProducerEpoch: epoch, Partitions: []TopicPartition{tp}})
	c.apply(4, c.c.Close())
	if r, ok := c.answer(tok); !ok || !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("waiter after Close: %v %v", ok, r.Err)
	}
	c.holdMarkers = false
	c.releaseMarkers(5) // reported after Close: ignored
	writes, puts := len(c.markers), len(c.puts)
	if errs := c.Tick(1000); len(errs) != 0 {
		t.Fatalf("Tick after Close: %v", errs)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddPartitions after Close: %v", err)
	}
	if len(c.markers) != writes || len(c.puts) != puts {
		t.Fatalf("markers or records written after Close")
	}
}

// A prepared transaction that recovery cannot complete stays prepared,
// reported but not fatal, and Tick completes it later.
func TestRecoveryThatCannotCompleteLeavesItPreparedForTick(t *testing.T) {
	c := newCoordinator(t)
	c.Replay("a", &Meta{TransactionalID: "a", ProducerID: 7, ProducerEpoch: 3, TimeoutMs: 1000, Status: PrepareAbort, Partitions: []TopicPartition{tp}})
	c.failMarkers = 1
	if errs := c.Loaded(10); len(errs) != 1 {
		t.Fatalf("recovery errors: %v", errs)
	}
	if got := c.Describe([]string{"a"})["a"].Status; got != PrepareAbort {
		t.Fatalf("after a failed recovery: %s", got)
	}
	if errs := c.Tick(20); len(errs) != 0 {
		t.Fatal(errs)
	}
	if got := c.Describe([]string{"a"})["a"].Status; got != CompleteAbort || len(c.markers) != 1 || c.markers[0] != "abort" {
		t.Fatalf("after Tick: %s, markers %v", got, c.markers)
	}
}

// An operator's abort aborts the transaction it names at a bumped epoch,
// answers once the markers are written, fences the producer, and refuses
// a transaction other than the open one it names.
func TestOperatorAbortFencesTheOpenTransaction(t *testing.T) {
	c := newCoordinator(t)
	pid, epoch, _ := c.InitProducerID("a", 60000, -1, -1, 0)
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 100); err != nil {
		t.Fatal(err)
	}
	if r := c.do(200, Abort{TransactionalID: "a", ProducerID: pid, ProducerEpoch: epoch + 1, StartMs: 100}); !errors.Is(r.Err, kerr.InvalidTxnState) {
		t.Fatalf("abort naming another epoch: %v", r.Err)
	}
	if r := c.do(200, Abort{TransactionalID: "nope", ProducerID: pid, ProducerEpoch: epoch, StartMs: 100}); !errors.Is(r.Err, kerr.TransactionalIDNotFound) {
		t.Fatalf("abort of an unknown id: %v", r.Err)
	}
	if r := c.do(300, Abort{TransactionalID: "a", ProducerID: pid, ProducerEpoch: epoch, StartMs: 100}); r.Err != nil {
		t.Fatalf("abort: %v", r.Err)
	}
	if len(c.markers) != 1 || c.markers[0] != "abort" {
		t.Fatalf("markers after the abort: %v", c.markers)
	}
	if m := c.c.Describe([]string{"a"})["a"]; m.Status != CompleteAbort || m.ProducerEpoch != epoch+1 {
		t.Fatalf("state after the abort: %s epoch %d", m.Status, m.ProducerEpoch)
	}
	if err := c.End("a", pid, epoch, true, 400); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("commit after the operator's abort: %v", err)
	}
}

// A producer keeps its id and epoch from one transaction to the next, so
// an operator's abort names the transaction by its start too: an abort
// of a transaction since committed leaves the producer's next one (begun
// in the same millisecond, with a start of its own) open and the
// producer unfenced.
func TestOperatorAbortOfACommittedTransactionLeavesTheNextOneOpen(t *testing.T) {
	c := newCoordinator(t)
	pid, epoch, _ := c.InitProducerID("a", 60000, -1, -1, 0)
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 100); err != nil {
		t.Fatal(err)
	}
	shown := c.Describe([]string{"a"})["a"].StartMs
	if err := c.End("a", pid, epoch, true, 100); err != nil {
		t.Fatal(err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 100); err != nil {
		t.Fatal(err)
	}
	next := c.Describe([]string{"a"})["a"]
	if next.StartMs == shown {
		t.Fatalf("two transactions of producer %d epoch %d both start at %d ms", pid, epoch, shown)
	}
	if r := c.do(100, Abort{TransactionalID: "a", ProducerID: pid, ProducerEpoch: epoch, StartMs: shown}); !errors.Is(r.Err, kerr.InvalidTxnState) {
		t.Fatalf("abort of the committed transaction: %v, want INVALID_TXN_STATE", r.Err)
	}
	if m := c.Describe([]string{"a"})["a"]; m.Status != Ongoing || m.ProducerEpoch != epoch {
		t.Fatalf("after the stale abort: %s epoch %d, want Ongoing epoch %d", m.Status, m.ProducerEpoch, epoch)
	}
	if err := c.End("a", pid, epoch, true, 100); err != nil {
		t.Fatalf("commit of the next transaction after the stale abort: %v", err)
	}
	if len(c.markers) != 2 || c.markers[0] != "commit" || c.markers[1] != "commit" {
		t.Fatalf("markers: %v, want two commits", c.markers)
	}
}
