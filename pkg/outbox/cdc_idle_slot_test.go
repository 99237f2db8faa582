package outbox

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// TestCDCIdleRelayKeepsItsSlotUsable runs a change-data-capture relay
// that has published everything and then sits idle while the database
// writes other tables, on a server with max_slot_wal_keep_size set (as
// managed PostgreSQL services and careful operators do, so that a lagging
// slot cannot fill the disk). The relay has streamed all that WAL and
// has nothing left to publish from it, so its slot must stay usable: an
// event written afterwards must be published. A relay that confirms
// nothing while idle lets the server invalidate its slot, after which
// no later event is ever streamed.
//
// A slot's WAL can be recycled only up to a running-transactions record
// the slot has decoded, which the server writes every 15 seconds while
// WAL grows (and at each checkpoint). The other work is therefore
// written in steps of 16 MB, each ended by a checkpoint that stands in
// for those 15 seconds, and the test waits (at most 10 s) after each for
// the slot to move; 160 MB in all, over three times what the server lets
// the slot keep.
func TestCDCIdleRelayKeepsItsSlotUsable(t *testing.T) {
	srv := startPostgres(t)
	e := newEnvAt(t, srv, "", "orders-idle")
	ctx := testCtx(t)
	for _, q := range []string{`ALTER SYSTEM SET max_slot_wal_keep_size = '48MB'`, `SELECT pg_reload_conf()`} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	e.cdcSetup("idle")
	first := e.placeOrdersInTxns(1, 1)
	cfg := e.config("idle", 0)
	cfg.HeartbeatInterval = 100 * time.Millisecond
	_, stop := e.startCDCWith(cfg)
	defer stop()
	e.waitPublishedWithin(first, 30*time.Second)

	for range 10 {
		before := e.walLSN()
		e.pushWALPast(before) // into the next 16 MB segment
		if _, err := e.pool.Exec(ctx, `CHECKPOINT`); err != nil {
			t.Fatal(err)
		}
		// The slot moves a step behind the checkpoints: wait until it
		// keeps at most the last two steps, 32 MB.
		deadline := time.Now().Add(10 * time.Second)
		for e.slotRestart("idle")+16<<20 < before && e.slotUsable("idle") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	var status string
	if err := e.pool.QueryRow(ctx, `SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1`, e.slotName("idle")).Scan(&status); err != nil {
		t.Fatal(err)
	}
	confirmed, _ := e.slotConfirmed("idle")
	t.Logf("after the other work: slot wal_status %s, confirmed at %s, restart at %s, server WAL at %s", status, confirmed, e.slotRestart("idle"), e.walLSN())
	later := e.placeOrdersInTxns(1, 1)
	e.waitPublishedWithin(append(first, later...), 20*time.Second)
}

// TestCDCRelayWithAnInvalidatedSlotRefusesToStart lets the server
// invalidate a stopped relay's slot (it keeps more WAL than
// max_slot_wal_keep_size allows) after an event was written: that event
// is never streamed. The relay must refuse to start with
// ErrSourceChanged, naming the invalidation, instead of retrying a slot
// that can no longer be read or passing the loss over in silence.
func TestCDCRelayWithAnInvalidatedSlotRefusesToStart(t *testing.T) {
	srv := startPostgres(t)
	e := newEnvAt(t, srv, "", "orders-lost")
	ctx := testCtx(t)
	for _, q := range []string{`ALTER SYSTEM SET max_slot_wal_keep_size = '32MB'`, `SELECT pg_reload_conf()`} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	e.cdcSetup("lost")
	e.placeOrdersInTxns(1, 1)
	for e.slotUsable("lost") {
		e.pushWALPast(e.walLSN())
		if _, err := e.pool.Exec(ctx, `CHECKPOINT`); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewCDCRelay(e.dsn, e.config("lost", 0))
	if err != nil {
		t.Fatal(err)
	}
	err = runUntilRefused(t, r, 30*time.Second)
	if !errors.Is(err, ErrSourceChanged) || !strings.Contains(err.Error(), "invalidated") {
		t.Fatalf("relay with an invalidated slot: %v; want ErrSourceChanged naming the invalidation", err)
	}
}

// slotUsable says whether relayID's slot still has its WAL (its
// wal_status is not lost).
func (e *env) slotUsable(relayID string) bool {
	e.t.Helper()
	var status string
	if err := e.pool.QueryRow(testCtx(e.t), `SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1`,
		e.slotName(relayID)).Scan(&status); err != nil {
		e.t.Fatal(err)
	}
	return status != "lost"
}

// slotRestart is the restart LSN of relayID's slot (0 if it has none):
// the oldest WAL the slot keeps on the server.
func (e *env) slotRestart(relayID string) pglogrepl.LSN {
	e.t.Helper()
	var s *string
	if err := e.pool.QueryRow(testCtx(e.t), `SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
		e.slotName(relayID)).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	if s == nil {
		return 0
	}
	lsn, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		e.t.Fatal(err)
	}
	return lsn
}
