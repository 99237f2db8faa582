package txn

import (
	"fmt"
	"testing"
)

// Invariant 4 in the pure state machine: while a completion's marker
// write is in flight (held), InitProducerId of the same id is parked with
// no deadline; Tick never answers it, however late. AddPartitions in the
// same position is answered CONCURRENT_TRANSACTIONS at SettleWaitMs.
func TestInitProducerIDParkedForACompletionIsBounded(t *testing.T) {
	cfg := defaultConfig
	cfg.SettleWaitMs = 1000
	c := newHarness(t, cfg)
	pid, epoch, err := c.InitProducerID("a", 10000, -1, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	c.holdMarkers = true
	if err := c.End("a", pid, epoch, true, 2); err != nil {
		t.Fatal(err)
	}
	addTok := c.send(3, AddPartitions{TransactionalID: "a", ProducerID: pid, ProducerEpoch: epoch, Partitions: []TopicPartition{tp}})
	initTok := c.send(3, InitProducerID{TransactionalID: "a", TimeoutMs: 10000, ProducerID: -1, ProducerEpoch: -1})
	c.Tick(3 + 60_000)
	if r, ok := c.answer(addTok); !ok {
		t.Errorf("AddPartitions unanswered after 60s")
	} else {
		t.Logf("AddPartitions after 60s: %v", r.Err)
	}
	if _, ok := c.answer(initTok); !ok {
		t.Errorf("InitProducerId of the same id unanswered 60s after it was sent (markers still in flight): no deadline, no CONCURRENT_TRANSACTIONS")
	}
}

// An ambiguous append failure: the driver (put in
// internal/broker/txn_coordinator.go) reports a failed durability wait,
// when the record is already in the __transaction_state log, as
// ErrOutcomeUnknown. Here the PrepareCommit record is kept by the log
// while its append is reported failed: the published view must not
// verify writes into a transaction whose durable state may be
// PrepareCommit, and the id is refused until its state is reloaded.
func TestAmbiguousPrepareFailureVerifiesNoWrite(t *testing.T) {
	c := newCoordinator(t)
	pid, epoch, err := c.InitProducerID("a", 10000, -1, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	// End(commit): its PrepareCommit reaches the log, its wait fails.
	tok := c.token + 1
	c.token = tok
	rd := c.c.Step(2, Input{Token: tok, Req: End{TransactionalID: "a", ProducerID: pid, ProducerEpoch: epoch, Commit: true}})
	if len(rd.Appends) != 1 || rd.Appends[0].Meta.Status != PrepareCommit {
		t.Fatalf("want one PrepareCommit append, got %+v", rd.Appends)
	}
	c.puts = append(c.puts, *rd.Appends[0].Meta.clone()) // in the log
	// The driver reports a failure after the write as ErrOutcomeUnknown.
	c.apply(2, c.c.AppendDone(2, rd.Appends[0].ID, fmt.Errorf("%w: fsync: input/output error", ErrOutcomeUnknown)))
	r, _ := c.answer(tok)
	t.Logf("EndTxn(commit) answered %v", r.Err)
	durable := c.puts[len(c.puts)-1]
	t.Logf("durable record of %q: %s at %d/%d", "a", durable.Status, durable.ProducerID, durable.ProducerEpoch)
	if err := c.InTransaction(pid, epoch, tp); err == nil {
		t.Errorf("view verifies a write of %d/%d to %v while the durable state of its transaction is %s (recovery will commit it, without the coordinator having asked for markers)", pid, epoch, tp, durable.Status)
	}
	// The client, told the commit failed, aborts; the abort is answered OK.
	if err := c.End("a", pid, epoch, false, 3); err != nil {
		t.Logf("abort: %v", err)
	}
	for i, m := range c.puts {
		t.Logf("log[%d] %s %d/%d", i, m.Status, m.ProducerID, m.ProducerEpoch)
	}
}
