package outbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// waitNothingPending waits (at most d) until the outbox holds no pending
// or claimed row.
func (e *env) waitNothingPending(d time.Duration) {
	e.t.Helper()
	ctx := testCtx(e.t)
	deadline := time.Now().Add(d)
	for {
		s := e.states(ctx)
		if s[StatePending] == 0 && s[StateClaimed] == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("rows still pending after %v: %v", d, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// flushWAL commits a transaction synchronously, which flushes the WAL of
// every transaction committed before it (the test server commits
// asynchronously).
func (e *env) flushWAL() {
	e.t.Helper()
	ctx := testCtx(e.t)
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, q := range []string{`SET LOCAL synchronous_commit = on`, `INSERT INTO orders (customer) VALUES ('flush')`} {
		if _, err := tx.Exec(ctx, q); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// TestCDCOutboxTableMovedAsideWhileTheRelayIsDownIsDrained stops a
// change-data-capture relay, commits events to the outbox table while it
// is down (the slot holds them), then moves the table aside (ALTER TABLE
// ... SET SCHEMA, an archive: the table keeps its oid and stays in the
// publication under its new name) and creates the outbox table again,
// and writes events to the new table. The package doc says that a table
// "dropped, or moved aside, and created again" is checked at start: the
// relay publishes what the slot still holds of the old table and stops
// with ErrSourceChanged, whose remedy (drop-slot, mark rows copied from
// the old table sent, polling relay) publishes the rest.
//
// The correct outcome: the held events are published once by the
// relay, it stops with ErrSourceChanged naming drop-slot, and after the
// remedy every event of both tables is in the topics exactly once.
// What happens instead: the publication check finds that the
// publication covers outbox_archive.weir_outbox rather than
// public.weir_outbox and stops the relay at once, without draining,
// with an error that is not ErrSourceChanged and tells the operator to
// drop the publication; the held events are never published.
func TestCDCOutboxTableMovedAsideWhileTheRelayIsDownIsDrained(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("m1")
	first := e.placeOrdersInTxns(2, 1)
	_, stop := e.startCDC("m1")
	e.waitPublishedWithin(first, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	held := e.placeOrdersInTxns(2, 1) // in the slot, not yet streamed

	for _, q := range []string{`CREATE SCHEMA outbox_archive`, `ALTER TABLE weir_outbox SET SCHEMA outbox_archive`} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := Migrate(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	oldTopic := e.topic
	e.topic = "orders-cdc-moved-down"
	e.createTopic()
	again := e.placeOrdersInTxns(2, 1)

	runErr := runUntilRefused(t, e.cdcRelay("m1"), 30*time.Second)
	t.Logf("relay stopped: %v", runErr)
	e.topic = oldTopic
	seen := idsOf(e.readTopic(kgo.ReadCommitted()))
	for _, id := range held {
		if seen[id] != 1 {
			t.Errorf("event %d, committed to the outbox table while the slot held it, published %d times by the relay before it stopped", id, seen[id])
		}
	}
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "drop-slot") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged naming its remedy (drop-slot)", runErr)
	}
	// The remedy: retire the relay id; no row was copied into the new
	// table; the polling relay publishes the new table's rows.
	if _, _, err := e.cdcRelay("m1").DropSlot(ctx); err != nil {
		t.Fatal(err)
	}
	e.topic = "orders-cdc-moved-down"
	poll := e.startRelay(e.config("p1", 0))
	e.waitPublishedWithin(again, 20*time.Second)
	if err := poll.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestCDCTableTakenOutOfItsPublicationRemedyPublishesNothingTwice has an
// operator take the outbox table out of the relay's publication (ALTER
// PUBLICATION ... DROP TABLE) under a running change-data-capture relay;
// the table itself stays, with the same oid, and every row the relay
// published from it is still pending (this mode never marks rows). Rows
// written while it is out are never streamed, by any slot. The relay
// must stop with ErrSourceChanged saying what happened (not that the
// table was dropped), and its remedy must publish nothing twice: it must
// not send the operator to the polling relay, which would publish every
// pending row again, but have the table put back, after which every
// later event is published once; the rows written while it was out are
// the error's to name, not the relay's to publish.
func TestCDCTableTakenOutOfItsPublicationRemedyPublishesNothingTwice(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("a1", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(3, 1)
	r := e.cdcRelay("a1")
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitPublishedWithin(first, 30*time.Second)

	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` DROP TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	out := e.placeOrdersInTxns(2, 1) // never streamed

	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("relay runs on after its outbox table left its publication: the rows written since are never streamed")
	}
	t.Logf("relay stopped: %v", runErr)
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "taken out of publication") ||
		!strings.Contains(runErr.Error(), "ADD TABLE") || strings.Contains(runErr.Error(), "drop-slot") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged saying the table left the publication, with the remedy of putting it back", runErr)
	}
	// The remedy: put the table back and start the relay again.
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` ADD TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	later := e.placeOrdersInTxns(2, 1)
	_, stop := e.startCDC("a1")
	defer stop()
	e.waitPublishedWithin(append(append([]int64{}, first...), later...), 30*time.Second)
	seen := idsOf(e.readTopic(kgo.ReadCommitted()))
	for _, id := range append(append([]int64{}, first...), later...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times after the remedy", id, seen[id])
		}
	}
	for _, id := range out {
		if seen[id] > 1 {
			t.Errorf("event %d, written while the table was out of the publication, published %d times", id, seen[id])
		}
	}
}

// TestCDCDrainPublishesOnlyTheOldTablesRows drops the outbox table while
// a change-data-capture relay is down (its slot holds an event of the
// old table), creates it again, and has the operator put the new table
// into the relay's publication (ALTER PUBLICATION ... ADD TABLE), the
// evident repair for a publication that covers no table; the
// application writes to the new table before and after that. Starting,
// the relay finds the table's oid changed (the progress records the old
// one) and drains the slot up to the server's WAL position. The package
// doc says the drain publishes "what the slot still holds of the old
// table", the relation checked by name only "when the old oid is
// unknown"; here it is known, yet every streamed row named like the
// table passes, so the new table's rows written after the repair are
// published by the drain, and then again by the polling relay that the
// error's remedy runs (they are pending in the new table and were not
// copied from the old one).
//
// The correct outcome: the drain publishes only rows of the old table's
// oid (or refuses), and after the error's remedy every event of both
// tables is in the topics exactly once.
func TestCDCDrainPublishesOnlyTheOldTablesRows(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("n1", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	_, stop := e.startCDC("n1")
	e.waitPublishedWithin(first, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	held := e.placeOrdersInTxns(1, 1) // in the slot, not yet streamed
	if _, err := e.pool.Exec(ctx, `DROP TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	const newTopic = "orders-cdc-readded"
	oldTopic := e.topic
	e.topic = newTopic
	e.createTopic()
	e.topic = oldTopic
	again := e.placeOrdersIn("weir_outbox", newTopic, 1)
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` ADD TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	again = append(again, e.placeOrdersIn("weir_outbox", newTopic, 2)...)

	// The test server commits asynchronously: flush, so that the drain's
	// end (the server's flushed WAL position at start) is past every
	// write above.
	e.flushWAL()
	runErr := runUntilRefused(t, e.cdcRelay("n1"), 30*time.Second)
	t.Logf("relay stopped: %v", runErr)
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "drop-slot") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged naming its remedy", runErr)
	}
	e.assertExactlyOnce(append(first, held...))
	// The remedy: retire the relay id; no row was copied into the new
	// table; the polling relay publishes the new table's rows.
	if _, _, err := e.cdcRelay("n1").DropSlot(ctx); err != nil {
		t.Fatal(err)
	}
	poll := e.startRelay(e.config("p1", 0))
	e.waitNothingPending(20 * time.Second)
	if err := poll.stop(); err != nil {
		t.Fatal(err)
	}
	e.topic = newTopic
	e.assertExactlyOnce(again)
}
