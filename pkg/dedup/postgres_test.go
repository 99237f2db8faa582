package dedup

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
)

// reservationsDDL is the business table the tests' handlers write their
// effect into. It has no unique constraint, so an effect applied twice
// shows as two rows.
const reservationsDDL = `CREATE TABLE reservations (order_id text NOT NULL, partition integer, record_offset bigint)`

func createReservations(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(testCtx(t), reservationsDDL); err != nil {
		t.Fatal(err)
	}
}

// reserve is the handlers' effect: one row for the order.
func reserve(ctx context.Context, tx pgx.Tx, orderID string, r *kgo.Record) error {
	var p, o any
	if r != nil {
		p, o = r.Partition, r.Offset
	}
	_, err := tx.Exec(ctx, `INSERT INTO reservations (order_id, partition, record_offset) VALUES ($1, $2, $3)`, orderID, p, o)
	return err
}

// reservations counts the rows per order.
func reservations(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(testCtx(t), `SELECT order_id, count(*) FROM reservations GROUP BY order_id`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	var id string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error { out[id] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPGProcessTxCommitsEffectAndKeyTogether(t *testing.T) {
	ctx := testCtx(t)
	pool := newPool(t, newDatabase(t))
	s := newPGStore(t, pool, PGOptions{})
	createReservations(t, pool)

	boom := errors.New("boom")
	ran, err := s.ProcessTx(ctx, "order-1", func(tx pgx.Tx) error {
		if err := reserve(ctx, tx, "order-1", nil); err != nil {
			return err
		}
		return boom // after the effect was written
	})
	if !ran || !errors.Is(err, boom) {
		t.Fatalf("failing handler: ran=%v err=%v", ran, err)
	}
	if got := reservations(t, pool); len(got) != 0 {
		t.Errorf("effect %v stored although the handler failed", got)
	}
	if seen, err := s.Seen("order-1"); seen || err != nil {
		t.Errorf("key stored although the handler failed (seen=%v, %v)", seen, err)
	}

	for i := range 3 {
		ran, err := s.ProcessTx(ctx, "order-1", func(tx pgx.Tx) error { return reserve(ctx, tx, "order-1", nil) })
		if err != nil || ran != (i == 0) {
			t.Errorf("call %d: ran=%v err=%v", i, ran, err)
		}
	}
	if got := reservations(t, pool); got["order-1"] != 1 || len(got) != 1 {
		t.Errorf("reservations %v, want order-1 once", got)
	}
	if seen, err := s.Seen("order-1"); !seen || err != nil {
		t.Errorf("key not stored after success (seen=%v, %v)", seen, err)
	}
}

func TestPGProcessRecordsKeyOnlyAfterSuccess(t *testing.T) {
	s := newPGStore(t, newPool(t, newDatabase(t)), PGOptions{})
	boom := errors.New("boom")
	if ran, err := s.Process("order-1", func() error { return boom }); !ran || !errors.Is(err, boom) {
		t.Fatalf("failing handler: ran=%v err=%v", ran, err)
	}
	runs := 0
	for i := range 3 {
		ran, err := s.Process("order-1", func() error { runs++; return nil })
		if err != nil || ran != (i == 0) {
			t.Errorf("call %d: ran=%v err=%v", i, ran, err)
		}
	}
	if runs != 1 {
		t.Errorf("handler ran %d times after the failure, want 1", runs)
	}
	if err := s.MarkProcessed("order-2"); err != nil {
		t.Fatal(err)
	}
	if ran, err := s.Process("order-2", func() error { t.Error("ran a marked key"); return nil }); ran || err != nil {
		t.Errorf("marked key: ran=%v err=%v", ran, err)
	}
}

func TestPGProcessRecordTxFailureStoresNoEffectKeyOrOffset(t *testing.T) {
	ctx := testCtx(t)
	pool := newPool(t, newDatabase(t))
	s := newPGStore(t, pool, PGOptions{})
	createReservations(t, pool)
	keyFn := KeyFromHeader("order-id")
	r := orderRecord(41, "o-7")

	boom := errors.New("boom")
	ran, err := s.ProcessRecordTx(ctx, "inventory", keyFn, r, func(tx pgx.Tx, r *kgo.Record) error {
		if err := reserve(ctx, tx, "o-7", r); err != nil {
			return err
		}
		return boom
	})
	if !ran || !errors.Is(err, boom) {
		t.Fatalf("failing handler: ran=%v err=%v", ran, err)
	}
	assertNothingStored := func(what string) {
		t.Helper()
		if got := reservations(t, pool); len(got) != 0 {
			t.Errorf("%s: effect %v stored", what, got)
		}
		if seen, _ := s.Seen("o-7"); seen {
			t.Errorf("%s: key stored", what)
		}
		offs, err := s.Offsets(ctx, "inventory")
		if err != nil || len(offs) != 0 {
			t.Errorf("%s: offsets %v, %v; want none", what, offs, err)
		}
	}
	assertNothingStored("handler failed after its effect")

	bare := orderRecord(42, "")
	if _, err := s.ProcessRecordTx(ctx, "inventory", keyFn, bare, func(pgx.Tx, *kgo.Record) error {
		t.Error("ran a record without a key")
		return nil
	}); !errors.Is(err, ErrNoKey) {
		t.Errorf("record without key: %v, want ErrNoKey", err)
	}
	assertNothingStored("record without a key")

	ran, err = s.ProcessRecordTx(ctx, "inventory", keyFn, r, func(tx pgx.Tx, r *kgo.Record) error { return reserve(ctx, tx, "o-7", r) })
	if !ran || err != nil {
		t.Fatalf("retry: ran=%v err=%v", ran, err)
	}
	offs, err := s.Offsets(ctx, "inventory")
	if err != nil || offs["orders"][2] != 42 || len(offs) != 1 || len(offs["orders"]) != 1 {
		t.Errorf("offsets %v, %v; want orders[2] = 42", offs, err)
	}
	// A duplicate of the order at a later offset is skipped, and the
	// group's offset still moves past it.
	ran, err = s.ProcessRecordTx(ctx, "inventory", keyFn, orderRecord(50, "o-7"), func(pgx.Tx, *kgo.Record) error {
		t.Error("ran a duplicate")
		return nil
	})
	if ran || err != nil {
		t.Errorf("duplicate: ran=%v err=%v", ran, err)
	}
	if offs, _ := s.Offsets(ctx, "inventory"); offs["orders"][2] != 51 {
		t.Errorf("offset after the skipped duplicate %v, want 51", offs)
	}
	if got := reservations(t, pool); got["o-7"] != 1 {
		t.Errorf("reservations %v, want o-7 once", got)
	}
}

// TestPGConcurrentProcessOfOneKeyRunsOnce races many calls with one key
// through two stores on separate pools, as two consumer processes would
// be: only the database's row lock stands between the stores.
func TestPGConcurrentProcessOfOneKeyRunsOnce(t *testing.T) {
	ctx := testCtx(t)
	dsn := newDatabase(t)
	poolA, poolB := newPool(t, dsn), newPool(t, dsn)
	stores := []*PGStore{newPGStore(t, poolA, PGOptions{}), newPGStore(t, poolB, PGOptions{})}
	createReservations(t, poolA)

	const callers = 32
	var runs atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 2*callers)
	for i := range callers {
		s := stores[i%2]
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.ProcessTx(ctx, "order-tx", func(tx pgx.Tx) error { return reserve(ctx, tx, "order-tx", nil) })
			errs <- err
		}()
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Process("order-plain", func() error { runs.Add(1); return nil })
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := reservations(t, poolA); got["order-tx"] != 1 {
		t.Errorf("ProcessTx applied the effect %d times, want once", got["order-tx"])
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("Process ran the handler %d times, want once", n)
	}
}

// TestPGWaitingCallRunsWhenTheFirstRollsBack: a second store's call with
// the same key waits on the first's uncommitted row; when the first
// handler fails, the waiting call runs its own.
func TestPGWaitingCallRunsWhenTheFirstRollsBack(t *testing.T) {
	ctx := testCtx(t)
	dsn := newDatabase(t)
	a, b := newPGStore(t, newPool(t, dsn), PGOptions{}), newPGStore(t, newPool(t, dsn), PGOptions{})
	observer := newPool(t, dsn)

	inFirst, failFirst := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := a.ProcessTx(ctx, "order-1", func(pgx.Tx) error {
			close(inFirst)
			<-failFirst
			return errors.New("first handler failed")
		})
		first <- err
	}()
	<-inFirst
	// Let the first call finish however this test ends, or the pool's
	// cleanup waits for its connection forever.
	letFirstFail := sync.OnceFunc(func() { close(failFirst) })
	defer letFirstFail()
	second := make(chan bool, 1)
	go func() {
		ran, err := b.ProcessTx(ctx, "order-1", func(pgx.Tx) error { return nil })
		if err != nil {
			t.Error(err)
		}
		second <- ran
	}()
	// Wait until the second call blocks on the first one's row lock.
	for {
		var waiting int
		err := observer.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case <-second:
			t.Fatal("second call returned while the first one's transaction was open")
		default:
		}
		if ctx.Err() != nil {
			t.Fatal("second call never waited on the first one's lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	letFirstFail()
	if err := <-first; err == nil {
		t.Fatal("first call did not report its handler's failure")
	}
	if !<-second {
		t.Error("waiting call skipped a key whose first processing rolled back")
	}
	if seen, _ := a.Seen("order-1"); !seen {
		t.Error("key not recorded after the second call succeeded")
	}
}

func TestPGPurgeRemovesOnlyOldKeys(t *testing.T) {
	ctx := testCtx(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := newPGStore(t, newPool(t, newDatabase(t)), PGOptions{TTL: time.Hour, Now: clock})

	if _, err := s.Process("old", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	advance(30 * time.Minute)
	s.MarkProcessed("newer")
	s.MarkProcessed("refreshed")
	advance(31 * time.Minute) // "old" is 61 minutes old, the others 31

	n, err := s.Purge(ctx, clock())
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1 key", n, err)
	}
	for key, want := range map[string]bool{"old": false, "newer": true, "refreshed": true} {
		if seen, _ := s.Seen(key); seen != want {
			t.Errorf("after purge, %q seen=%v, want %v", key, seen, want)
		}
	}
	// Marking a key again restarts its age.
	s.MarkProcessed("refreshed")
	advance(40 * time.Minute)
	if n, err := s.Purge(ctx, clock()); n != 1 || err != nil {
		t.Fatalf("second Purge = %d, %v; want only \"newer\"", n, err)
	}
	if seen, _ := s.Seen("refreshed"); !seen {
		t.Error("a key marked again was purged by its first age")
	}
	// A duplicate of a purged key is processed as new.
	if ran, err := s.Process("old", func() error { return nil }); !ran || err != nil {
		t.Errorf("purged key: ran=%v err=%v", ran, err)
	}
	// No TTL: nothing is purged.
	keep := newPGStore(t, s.Pool(), PGOptions{Table: "keep_keys", OffsetsTable: "keep_offsets", Now: clock})
	keep.MarkProcessed("k")
	if n, err := keep.Purge(ctx, clock().Add(1000*time.Hour)); n != 0 || err != nil {
		t.Errorf("Purge without TTL = %d, %v; want nothing", n, err)
	}
}

func TestPGPurgeDeletesMoreThanOneBatch(t *testing.T) {
	ctx := testCtx(t)
	pool := newPool(t, newDatabase(t))
	s := newPGStore(t, pool, PGOptions{TTL: time.Minute})
	want := purgeBatch + 7
	if _, err := pool.Exec(ctx, `INSERT INTO weir_dedup_keys (key, processed_at)
		SELECT convert_to('k' || i, 'UTF8'), now() - interval '1 hour' FROM generate_series(1, $1) AS i`, want); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Purge(ctx, time.Now()); n != want || err != nil {
		t.Fatalf("Purge = %d, %v; want %d", n, err, want)
	}
}

func TestPGStoreRejectsBadOptionsAndKeys(t *testing.T) {
	ctx := testCtx(t)
	pool := newPool(t, newDatabase(t))
	for _, opts := range []PGOptions{
		{Table: "keys; DROP TABLE x"},
		{Table: `"quoted"`},
		{OffsetsTable: "a.b.c"},
		{Table: "same", OffsetsTable: "SAME"},
		{TTL: -time.Second},
	} {
		if _, err := NewPGStore(ctx, pool, opts); err == nil {
			t.Errorf("NewPGStore(%+v) accepted", opts)
		}
	}
	if _, err := NewPGStore(ctx, nil, PGOptions{}); err == nil {
		t.Error("NewPGStore accepted a nil pool")
	}
	if _, err := pool.Exec(ctx, `CREATE SCHEMA billing`); err != nil {
		t.Fatal(err)
	}
	s := newPGStore(t, pool, PGOptions{Table: "billing.Dedup_Keys", OffsetsTable: "billing.offsets"})
	if err := s.MarkProcessed("k"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM billing.dedup_keys`).Scan(&n); err != nil || n != 1 {
		t.Errorf("schema-qualified table holds %d keys, %v; want 1", n, err)
	}
	long := strings.Repeat("x", MaxKeyBytes+1)
	for _, c := range []struct {
		key  string
		want error
	}{{"", ErrNoKey}, {long, ErrKeyTooLong}} {
		if _, err := s.ProcessTx(ctx, c.key, func(pgx.Tx) error { t.Error("ran"); return nil }); !errors.Is(err, c.want) {
			t.Errorf("ProcessTx(len %d) = %v, want %v", len(c.key), err, c.want)
		}
		if _, err := s.Process(c.key, func() error { t.Error("ran"); return nil }); !errors.Is(err, c.want) {
			t.Errorf("Process(len %d) = %v, want %v", len(c.key), err, c.want)
		}
	}
	// Keys are bytes: a header value that is not text is a key like any
	// other.
	if ran, err := s.Process("\x00\xff", func() error { return nil }); !ran || err != nil {
		t.Errorf("binary key: ran=%v err=%v", ran, err)
	}
	if seen, _ := s.Seen("\x00\xff"); !seen {
		t.Error("binary key not recorded")
	}
}

// TestPGAdjustOffsetsReplacesOnlyStoredPartitions: assigned partitions
// with an offset stored for the group start there; the others keep what
// Kafka had, and other groups' offsets play no part.
func TestPGAdjustOffsetsReplacesOnlyStoredPartitions(t *testing.T) {
	ctx := testCtx(t)
	pool := newPool(t, newDatabase(t))
	s := newPGStore(t, pool, PGOptions{})
	apply := func(group string, r *kgo.Record) {
		t.Helper()
		if _, err := s.ProcessRecordTx(ctx, group, KeyFromOffset(), r, func(pgx.Tx, *kgo.Record) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	apply("inventory", &kgo.Record{Topic: "orders", Partition: 0, Offset: 9})
	apply("inventory", &kgo.Record{Topic: "payments", Partition: 1, Offset: 3})
	apply("billing", &kgo.Record{Topic: "orders", Partition: 1, Offset: 70})

	kafka := kgo.NewOffset().At(4)
	assigned := map[string]map[int32]kgo.Offset{
		"orders":   {0: kafka, 1: kafka},
		"payments": {0: kafka},
	}
	got, err := s.AdjustOffsets("inventory")(ctx, assigned)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int32]int64{"orders": {0: 10, 1: 4}, "payments": {0: 4}}
	for topic, parts := range want {
		for p, at := range parts {
			if o := got[topic][p].EpochOffset(); o.Offset != at {
				t.Errorf("%s[%d] starts at %d, want %d", topic, p, o.Offset, at)
			}
		}
	}
	if _, ok := got["payments"][1]; ok {
		t.Error("a stored partition the consumer was not assigned was added")
	}
}

func TestPGStoresStartingTogetherShareTheirTables(t *testing.T) {
	ctx := testCtx(t)
	dsn := newDatabase(t)
	const stores = 8
	errs := make(chan error, stores)
	for range stores {
		go func() {
			pool, err := pgxpool.New(ctx, dsn)
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			_, err = NewPGStore(ctx, pool, PGOptions{})
			errs <- err
		}()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestPGPurgeGoesByTheDatabaseClock: keys are stamped, and purged, by
// the database's clock, so a consumer or purging host whose clock is off
// by more than the TTL neither writes keys that are purged at once nor
// purges fresh ones.
func TestPGPurgeGoesByTheDatabaseClock(t *testing.T) {
	ctx := testCtx(t)
	s := newPGStore(t, newPool(t, newDatabase(t)), PGOptions{TTL: time.Hour})
	if err := s.MarkProcessed("k"); err != nil {
		t.Fatal(err)
	}
	// A purging host whose clock runs two hours ahead.
	if n, err := s.Purge(ctx, time.Now().Add(2*time.Hour)); n != 0 || err != nil {
		t.Fatalf("Purge by a clock two hours ahead = %d, %v; want nothing purged", n, err)
	}
	if ran, err := s.Process("k", func() error { return nil }); ran || err != nil {
		t.Fatalf("key processed again (ran=%v, err=%v) after a purge by a skewed clock", ran, err)
	}
	var fresh bool
	if err := s.Pool().QueryRow(ctx, `SELECT abs(extract(epoch FROM now() - processed_at)) < 60 FROM weir_dedup_keys WHERE key = 'k'`).Scan(&fresh); err != nil || !fresh {
		t.Fatalf("key not stamped by the database's clock (fresh %v, %v)", fresh, err)
	}
}
