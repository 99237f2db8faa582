package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// waitSlotConfirmedPast waits (at most d) until relayID's slot is
// confirmed beyond lsn and returns its confirmed position.
func (e *env) waitSlotConfirmedPast(relayID string, lsn pglogrepl.LSN, d time.Duration) pglogrepl.LSN {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, _ := e.slotConfirmed(relayID)
		if c > lsn {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("slot of %s still confirmed at %s after %v, want past %s", relayID, c, d, lsn)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishedOrRefused runs r for at most d and says how it ended: nil once
// every one of ids is in the topic (read_committed), the error the relay
// stopped with, or a test failure naming how many of ids are missing if
// it runs on without publishing them.
func (e *env) publishedOrRefused(r *CDCRelay, ids []int64, d time.Duration) error {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(d)
	for {
		select {
		case err := <-done:
			done <- err
			return err
		default:
		}
		seen := idsOf(e.readTopic(kgo.ReadCommitted()))
		missing := 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the relay runs on, but after %v %d of the %d events committed are not published, and it has not stopped with an error saying so",
				d, missing, len(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCDCRefusesAfterRestoreOfACopyTakenBeforeAHeartbeat demonstrates that
// a heartbeat record defeats the restore check that a transaction record
// keeps. A file-system copy of the cluster (slot included) is taken after
// the last published transaction; the relay then sits idle while other
// tables write, and records and confirms a heartbeat at X. The copy is
// restored: its slot is confirmed before X, so the relay resumes with the
// heartbeat to verify. The restored database commits new outbox events
// (a history the relay never saw, at positions before X), and other
// writes carry its WAL past X. A transaction record would make the
// relay demand the recorded transaction back and refuse; a heartbeat
// names no transaction, so the relay treats the new events as already
// published and confirms X: they are lost without an error. Each must be
// published, or the relay must refuse with ErrSourceChanged.
func TestCDCRefusesAfterRestoreOfACopyTakenBeforeAHeartbeat(t *testing.T) {
	srv := startPostgres(t)
	a := newEnvAt(t, srv, "", "orders-copy-heartbeat")
	a.cdcSetup("c1")
	first := a.placeOrdersInTxns(3, 1)
	a.publishWithCDC(first)
	a.pool.Close()
	srv.Halt()
	cp, err := srv.Copy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	a = attachEnv(t, a, srv)

	// Idle relay, other tables written: a heartbeat is recorded and
	// confirmed past the last transaction.
	before, _ := a.slotConfirmed("c1")
	cfg := a.config("c1", 0)
	cfg.HeartbeatInterval = 100 * time.Millisecond
	_, stop := a.startCDCWith(cfg)
	a.pushWALPast(a.walLSN()) // into the next WAL segment
	target := a.walLSN()
	if _, err := a.pool.Exec(testCtx(t), `INSERT INTO orders (customer) VALUES ('other work')`); err != nil {
		t.Fatal(err)
	}
	a.waitSlotConfirmedPast("c1", target-1, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	hb, _ := a.slotConfirmed("c1")
	t.Logf("last transaction confirmed at %s, heartbeat confirmed at %s", before, hb)
	a.pool.Close()
	srv.Halt()

	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	b := attachEnv(t, a, cp)
	fresh := b.placeOrdersInTxns(2, 1)
	b.pushWALPast(hb)
	err = b.publishedOrRefused(b.cdcRelay("c1"), fresh, 20*time.Second)
	if err != nil && !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged or the events published", err)
	}
	t.Logf("relay on the restored copy: %v", err)
}

// TestCDCOutboxTableMovedAsideAndCreatedAgainIsPublishedOrRefused moves
// the outbox table aside under a running change-data-capture relay
// (ALTER TABLE ... SET SCHEMA, an archive of the old outbox: the table,
// its indexes and sequence keep their oids) and creates the outbox table
// again with Migrate, then writes events to the new table. The
// publication still covers the old table's oid, so the table watch sees
// nothing wrong, and the stream carries nothing of the new table: the
// relay runs on and publishes none of them. Each must be published once,
// or the relay must stop with ErrSourceChanged, as it does when the old
// table is dropped instead (TestCDCOutboxTableCreatedAgainIsPublishedOrRefused).
func TestCDCOutboxTableMovedAsideAndCreatedAgainIsPublishedOrRefused(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("t1")
	first := e.placeOrdersInTxns(2, 1)
	r := e.cdcRelay("t1")
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { cancel(); <-done }()
	e.waitPublishedWithin(first, 30*time.Second)

	for _, q := range []string{`CREATE SCHEMA outbox_archive`, `ALTER TABLE weir_outbox SET SCHEMA outbox_archive`} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := Migrate(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	// The new table's ids start over: a topic of their own.
	e.topic = "orders-cdc-moved"
	e.createTopic()
	again := e.placeOrdersInTxns(3, 1)
	// The table watch looks every 2 s: 15 s is ample.
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			if !errors.Is(err, ErrSourceChanged) {
				t.Fatalf("relay stopped with %v; want ErrSourceChanged", err)
			}
			t.Logf("relay stopped: %v", err)
			return
		default:
		}
		seen := idsOf(e.readTopic(kgo.ReadCommitted()))
		if len(seen) == len(again) {
			e.assertExactlyOnce(again)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay runs on but published %d of the %d events written to the outbox table created again", len(seen), len(again))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCDCTableRewrittenByCopyAndSwapRemedyPublishesEachEventOnce rewrites
// the outbox table under a running change-data-capture relay the way
// online schema change tools and hand-made migrations do: a new table is
// filled with the old one's rows (ids and event UUIDs kept), the old one
// dropped and the new one renamed into its place, in one transaction. The
// relay stops with ErrSourceChanged, whose remedy says that after weir
// outbox drop-slot the polling relay "publishes every row pending in the
// table, each once". The change-data-capture relay never marks rows sent,
// so the rows it already published are pending in the new table: a
// remedy that says nothing of them publishes them a second time. Every
// event must be in the topic exactly once after following the error's
// remedy, which must say what to do with the copied rows.
func TestCDCTableRewrittenByCopyAndSwapRemedyPublishesEachEventOnce(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("w1")
	first := e.placeOrdersInTxns(3, 1)
	r := e.cdcRelay("w1")
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitPublishedWithin(first, 30*time.Second)

	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		for _, q := range []string{
			`CREATE TABLE weir_outbox_new (LIKE weir_outbox INCLUDING ALL)`,
			`INSERT INTO weir_outbox_new SELECT * FROM weir_outbox`,
			`ALTER SEQUENCE weir_outbox_id_seq OWNED BY weir_outbox_new.id`,
			`DROP TABLE weir_outbox`,
			`ALTER TABLE weir_outbox_new RENAME TO weir_outbox`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	again := e.placeOrdersInTxns(2, 1)

	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("relay runs on after its outbox table was replaced")
	}
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "drop-slot") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged naming its remedy", runErr)
	}
	t.Logf("relay stopped: %v", runErr)
	// The remedy the error gives: retire the relay id, mark the rows
	// copied from the old table (published from it) sent, and let the
	// polling relay publish the rest.
	if !strings.Contains(runErr.Error(), "copied") {
		t.Fatalf("the remedy does not say what to do with rows copied from the old table: %v", runErr)
	}
	if _, _, err := e.cdcRelay("w1").DropSlot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE weir_outbox SET state = 'sent' WHERE id = ANY($1)`, first); err != nil {
		t.Fatal(err)
	}
	poll := e.startRelay(e.config("p1", 0))
	all := append(append([]int64{}, first...), again...)
	deadline := time.Now().Add(20 * time.Second)
	for e.states(ctx)[StatePending] > 0 || e.states(ctx)[StateClaimed] > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("polling relay left rows: %v", e.states(ctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := poll.stop(); err != nil {
		t.Fatal(err)
	}
	e.assertExactlyOnce(all)
}

// TestCDCEventsInTheSlotWhenTheOutboxTableIsReplacedArePublished stops a
// change-data-capture relay, commits events to the outbox table while it
// is down, then drops the table and creates it again (an outbox reset)
// and writes events to the new table. The first events were committed
// after the slot existed, to a table the publication covered: the slot
// holds them and can stream them. The relay refuses at once (the table's
// oid changed) without streaming them, and its remedy (weir outbox
// drop-slot, then the polling relay publishes the new table's pending
// rows) drops the slot that held them: they are never published, and
// the error does not say that they are lost. Every event must be
// published once after following the error's remedy.
func TestCDCEventsInTheSlotWhenTheOutboxTableIsReplacedArePublished(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("d1")
	first := e.placeOrdersInTxns(2, 1)
	_, stop := e.startCDC("d1")
	e.waitPublishedWithin(first, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	held := e.placeOrdersInTxns(2, 1) // in the slot, not yet streamed

	if _, err := e.pool.Exec(ctx, `DROP TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	oldTopic := e.topic
	e.topic = "orders-cdc-reset"
	e.createTopic()
	again := e.placeOrdersInTxns(2, 1)

	runErr := runUntilRefused(t, e.cdcRelay("d1"), 30*time.Second)
	t.Logf("relay stopped: %v", runErr)
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "drop-slot") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged naming its remedy", runErr)
	}
	if _, _, err := e.cdcRelay("d1").DropSlot(ctx); err != nil {
		t.Fatal(err)
	}
	poll := e.startRelay(e.config("p1", 0))
	e.waitPublishedWithin(again, 20*time.Second)
	if err := poll.stop(); err != nil {
		t.Fatal(err)
	}
	e.topic = oldTopic
	seen := idsOf(e.readTopic(kgo.ReadCommitted()))
	for _, id := range held {
		if seen[id] != 1 {
			t.Errorf("event %d, committed to the outbox table while the slot held it, published %d times after the remedy", id, seen[id])
		}
	}
}
