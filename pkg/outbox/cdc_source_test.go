package outbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/testsvc"
)

// startPostgres starts a PostgreSQL cluster of the test's own: its own
// initdb, so its own system identifier and its own WAL positions.
func startPostgres(t *testing.T) *testsvc.Postgres {
	t.Helper()
	srv, err := testsvc.StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// walLSN returns the server's current WAL insert position.
func (e *env) walLSN() pglogrepl.LSN {
	e.t.Helper()
	var s string
	if err := e.pool.QueryRow(testCtx(e.t), `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		e.t.Fatal(err)
	}
	return lsn
}

// pushWALPast makes the server's WAL position pass lsn, one segment
// switch at a time.
func (e *env) pushWALPast(lsn pglogrepl.LSN) {
	e.t.Helper()
	ctx := testCtx(e.t)
	for e.walLSN() <= lsn {
		// A switch needs something written in the current segment.
		if _, err := e.pool.Exec(ctx, `INSERT INTO orders (customer) VALUES ('wal')`); err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.pool.Exec(ctx, `SELECT pg_switch_wal()`); err != nil {
			e.t.Fatal(err)
		}
	}
}

// slotConfirmed returns the confirmed position of relayID's slot, and
// whether the slot exists.
func (e *env) slotConfirmed(relayID string) (pglogrepl.LSN, bool) {
	e.t.Helper()
	var s *string
	err := e.pool.QueryRow(testCtx(e.t), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
		e.slotName(relayID)).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if s == nil {
		return 0, true
	}
	lsn, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		e.t.Fatal(err)
	}
	return lsn, true
}

// reopenEnv is e on a database created again under e's name: the
// outbox migrated anew, on the same broker, with a new events topic.
func reopenEnv(t *testing.T, e *env, topic string) *env {
	t.Helper()
	ctx := testCtx(t)
	pool, err := pgxpool.New(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	n := *e
	n.pool, n.topic = pool, topic
	resp, err := kadm.NewClient(n.client()).CreateTopic(ctx, n.parts, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	return &n
}

// slotName is the slot of relayID's relay on the default table.
func (e *env) slotName(relayID string) string {
	e.t.Helper()
	slot, _ := e.cdcNames(e.config(relayID, 0))
	return slot
}

// cdcNames are the slot and publication of the relay configured by cfg.
func (e *env) cdcNames(cfg RelayConfig) (slot, pub string) {
	e.t.Helper()
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	slot, pub, err = r.Names(testCtx(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	return slot, pub
}

// cdcRelay returns a change-data-capture relay for this environment,
// not started.
func (e *env) cdcRelay(relayID string) *CDCRelay {
	e.t.Helper()
	r, err := NewCDCRelay(e.dsn, e.config(relayID, 0))
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// waitPublishedWithin is waitPublished that gives up after d.
func (e *env) waitPublishedWithin(ids []int64, d time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		seen := idsOf(e.readTopic(kgo.ReadCommitted()))
		missing := 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			e.assertExactlyOnce(ids)
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after %v, %d of %d events not published", d, missing, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runUntilRefused runs relay until it returns, at most d, and returns
// what it returned; a relay still running after d fails the test.
func runUntilRefused(t *testing.T, r *CDCRelay, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := r.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("relay still running after %v; want it to refuse to start", d)
	}
	return err
}

// TestCDCProgressOfAnotherClusterSkipsNothingThere runs relay id c1 on
// cluster A, whose WAL is far ahead, then with the same relay id and
// progress topic on a fresh cluster B. A's progress says nothing about
// B's transactions: all of B's events are published, exactly once, and
// B's slot is confirmed only up to positions B delivered.
func TestCDCProgressOfAnotherClusterSkipsNothingThere(t *testing.T) {
	a := newCDCEnv(t)
	b := newEnvAt(t, startPostgres(t), a.brokers, "orders-b")
	a.cdcSetup("c1")
	a.pushWALPast(b.walLSN() + 64<<20)
	aIDs := a.placeOrdersInTxns(1, 1)
	_, stopA := a.startCDC("c1")
	a.waitPublished(aIDs)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}

	b.cdcSetup("c1")
	bIDs := b.placeOrdersInTxns(3, 1)
	_, stopB := b.startCDC("c1")
	b.waitPublishedWithin(bIDs, 30*time.Second)
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	confirmed, ok := b.slotConfirmed("c1")
	if end := b.walLSN(); !ok || confirmed > end {
		t.Fatalf("slot on B confirmed at %s (exists %v), beyond B's WAL end %s", confirmed, ok, end)
	}
}

// TestCDCRecreatedDatabasePublishesItsEvents drops a database a relay
// streamed from, creates it again under the same name and runs the relay
// id there again: the new database (a new oid) is a new source, and all
// its events are published once.
func TestCDCRecreatedDatabasePublishesItsEvents(t *testing.T) {
	srv := startPostgres(t)
	a := newEnvAt(t, srv, "", "orders-r")
	a.cdcSetup("c1")
	aIDs := a.placeOrdersInTxns(2, 1)
	_, stop := a.startCDC("c1")
	a.waitPublished(aIDs)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	name := a.pool.Config().ConnConfig.Database
	slot := a.slotName("c1")
	a.pool.Close()
	admin, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{
		`SELECT pg_drop_replication_slot('` + slot + `')`,
		`DROP DATABASE ` + name,
		`CREATE DATABASE ` + name,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// The new database's ids start over: its events go to a topic of
	// their own, so that they cannot be taken for the old ones.
	b := reopenEnv(t, a, "orders-r2")
	b.cdcSetup("c1")
	bIDs := b.placeOrdersInTxns(3, 1)
	_, stop = b.startCDC("c1")
	b.waitPublishedWithin(bIDs, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestCDCRefusesToStartWhenItsSlotIsGone drops the slot of a relay that
// has published: the events committed while no slot existed can no
// longer be streamed, so the relay must refuse to start (naming the
// slot) rather than create a new slot and carry on without them.
func TestCDCRefusesToStartWhenItsSlotIsGone(t *testing.T) {
	e := newCDCEnv(t)
	e.cdcSetup("c1")
	ids := e.placeOrdersInTxns(2, 1)
	_, stop := e.startCDC("c1")
	e.waitPublished(ids)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r := e.cdcRelay("c1")
	slot := e.slotName("c1")
	if _, err := e.pool.Exec(testCtx(t), `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
		t.Fatal(err)
	}
	e.placeOrdersInTxns(2, 1) // lost to this relay: no slot saw them
	err := runUntilRefused(t, r, 30*time.Second)
	if !errors.Is(err, ErrSourceChanged) || !strings.Contains(err.Error(), slot) {
		t.Fatalf("run: %v; want %v naming slot %s", err, ErrSourceChanged, slot)
	}
	if _, ok := e.slotConfirmed("c1"); ok {
		t.Fatal("the refusing relay created a new slot")
	}
}
