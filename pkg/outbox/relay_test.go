package outbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
)

func TestMigrateIsIdempotent(t *testing.T) {
	e := newEnv(t) // migrated once already
	ctx := testCtx(t)
	if err := Migrate(ctx, e.pool); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if err := MigrateTable(ctx, e.pool, "public.shop_outbox"); err != nil {
		t.Fatal(err)
	}
	if err := MigrateTable(ctx, e.pool, "public.shop_outbox"); err != nil {
		t.Fatalf("second migrate of shop_outbox: %v", err)
	}
	for _, rel := range []string{"weir_outbox", "weir_outbox_relays", "weir_outbox_batch_seq", "shop_outbox", "shop_outbox_relays"} {
		var ok bool
		if err := e.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, rel).Scan(&ok); err != nil || !ok {
			t.Errorf("%s missing after migrate (err %v)", rel, err)
		}
	}
	if err := MigrateTable(ctx, e.pool, "bad name; drop table x"); err == nil || !strings.Contains(err.Error(), "invalid table name") {
		t.Errorf("bad table name: err = %v", err)
	}
}

func TestWriteIsPartOfTheCallersTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	// Rolled back with the business row: no event.
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO orders (customer) VALUES ('ann')`); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(ctx, tx, Event{Topic: "orders", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.states(ctx); len(s) != 0 {
		t.Fatalf("after rollback the outbox holds %v", s)
	}
	// Committed: one pending event with what was written.
	id, err := e.placeOrder(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	var topic, state string
	var key []byte
	var headers map[string]string
	err = e.pool.QueryRow(ctx, `SELECT topic, key, state, headers FROM weir_outbox WHERE id = $1`, id).Scan(&topic, &key, &state, &headers)
	if err != nil {
		t.Fatal(err)
	}
	if topic != "orders" || string(key) != "bob" || state != StatePending || headers["type"] != "order-placed" {
		t.Errorf("row = %q %q %q %v", topic, key, state, headers)
	}
}

func TestWriteRejectsInvalidEvents(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	for name, ev := range map[string]Event{
		"no topic":        {Payload: []byte("x")},
		"event id header": {Topic: "t", Headers: map[string]string{EventIDHeader: "7"}},
	} {
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			_, err := Write(ctx, tx, ev)
			return err
		})
		if !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: err = %v, want ErrInvalidEvent", name, err)
		}
	}
}

func TestNewRelayRejectsBadConfig(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		cfg  RelayConfig
		want string
	}{
		{RelayConfig{}, "at least one broker"},
		{RelayConfig{Brokers: []string{"b"}, BatchSize: -1}, "batch size"},
		{RelayConfig{Brokers: []string{"b"}, BatchSize: MaxBatchSize + 1}, "batch size"},
		{RelayConfig{Brokers: []string{"b"}, PollInterval: -time.Second}, "poll interval"},
		{RelayConfig{Brokers: []string{"b"}, ProgressTopic: "__progress"}, "reserved"},
		{RelayConfig{Brokers: []string{"b"}, Table: "x y"}, "invalid table name"},
		{RelayConfig{Brokers: []string{"b"}, RelayID: " r"}, "invalid relay id"},
		{RelayConfig{Brokers: []string{"b"}, TxnTimeout: time.Millisecond}, "transaction timeout"},
	} {
		if _, err := NewRelay(e.pool, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewRelay(nil, e.config("r", 1)); err == nil {
		t.Error("nil pool accepted")
	}
}

func TestRelayPublishesKeyPayloadHeadersAndEventID(t *testing.T) {
	e := newEnv(t)
	ids := e.placeOrders(12)
	r := e.startRelay(e.config("r1", 5))
	e.waitAllSent(len(ids))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	got := e.assertExactlyOnce(ids)
	assertKeyOrder(t, got)
	ctx := testCtx(t)
	for _, p := range got {
		var key, payload string
		err := e.pool.QueryRow(ctx, `SELECT convert_from(key, 'UTF8'), convert_from(payload, 'UTF8') FROM weir_outbox WHERE id = $1`, p.id).Scan(&key, &payload)
		if err != nil {
			t.Fatal(err)
		}
		if p.key != key || p.payload != payload || p.headers["type"] != "order-placed" || p.headers[EventIDHeader] != strconv.FormatInt(p.id, 10) {
			t.Errorf("event %d published as key %q payload %q headers %v; row has key %q payload %q", p.id, p.key, p.payload, p.headers, key, payload)
		}
	}
	if s := r.r.Stats(); s.Events != 12 || s.Batches != 3 {
		t.Errorf("stats %+v, want 12 events in 3 batches of at most 5", s)
	}
	// The progress topic was created compacted.
	cfgs, err := kadm.NewClient(e.client()).DescribeTopicConfigs(ctx, DefaultProgressTopic)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, c := range cfgs {
		for _, kv := range c.Configs {
			if kv.Key == "cleanup.policy" && kv.Value != nil {
				policy = *kv.Value
			}
		}
	}
	if policy != "compact" {
		t.Errorf("progress topic cleanup.policy = %q, want compact", policy)
	}
}

// writeWhile writes orders from n goroutines until stop is closed and
// returns the event ids.
func (e *env) writeWhile(n int, stop <-chan struct{}) func() []int64 {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  []int64
		errs []error
	)
	ctx := testCtx(e.t)
	for w := range n {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := e.placeOrder(ctx, fmt.Sprintf("w%d-c%d", w, i%5))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				ids = append(ids, id)
				mu.Unlock()
			}
		})
	}
	return func() []int64 {
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			e.t.Fatal(err)
		}
		return ids
	}
}

// waitPublished polls until the relays together committed at least n events.
func waitPublished(t *testing.T, n int64, rs ...*running) {
	t.Helper()
	ctx := testCtx(t)
	for {
		var sum int64
		for _, r := range rs {
			sum += r.r.Stats().Events
		}
		if sum >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("relays published %d events, want %d", sum, n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestTwoRelaysRunningConcurrentlyPublishEachEventOnce(t *testing.T) {
	e := newEnv(t)
	stop := make(chan struct{})
	written := e.writeWhile(4, stop)
	a := e.startRelay(e.config("a", 7))
	b := e.startRelay(e.config("b", 7))
	waitPublished(t, 1000, a, b)
	close(stop)
	ids := written()
	e.waitAllSent(len(ids))
	for _, r := range []*running{a, b} {
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d events: relay a published %+v, relay b %+v", len(ids), a.r.Stats(), b.r.Stats())
	e.assertExactlyOnce(ids)
}

func TestRelayWithTheSameIDFencesTheRunningOne(t *testing.T) {
	e := newEnv(t)
	stop := make(chan struct{})
	written := e.writeWhile(2, stop)
	old := e.startRelay(e.config("r1", 5))
	waitPublished(t, 100, old)
	successor := e.startRelay(e.config("r1", 5))
	ctx := testCtx(t)
	select {
	case err := <-old.done:
		old.done <- err
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("old relay returned %v, want ErrFenced", err)
		}
	case <-ctx.Done():
		t.Fatal("old relay still running after a relay with its id started")
	}
	waitPublished(t, 100, successor)
	close(stop)
	ids := written()
	e.waitAllSent(len(ids))
	if err := successor.stop(); err != nil {
		t.Fatal(err)
	}
	assertKeyOrder(t, e.assertExactlyOnce(ids))
}

func TestRelayStopsCleanlyLeavingNothingClaimed(t *testing.T) {
	e := newEnv(t)
	stop := make(chan struct{})
	written := e.writeWhile(2, stop)
	r := e.startRelay(e.config("r1", 50))
	waitPublished(t, 200, r)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	ids := written()
	ctx := testCtx(t)
	if s := e.states(ctx); s[StateClaimed] != 0 {
		t.Fatalf("after a clean stop: %v, want nothing claimed", s)
	}
	r2 := e.startRelay(e.config("r1", 50))
	e.waitAllSent(len(ids))
	if err := r2.stop(); err != nil {
		t.Fatal(err)
	}
	e.assertExactlyOnce(ids)
}

func TestRunFailsFastOnAMissingTable(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("r1", 5)
	cfg.Table = "no_such_outbox"
	r, err := NewRelay(e.pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Run(ctx); err == nil || !strings.Contains(err.Error(), "no_such_outbox") {
		t.Fatalf("Run = %v, want an error naming the table", err)
	}
}

func TestRelayOnASchemaQualifiedTable(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	if _, err := e.pool.Exec(ctx, `CREATE SCHEMA shop`); err != nil {
		t.Fatal(err)
	}
	if err := MigrateTable(ctx, e.pool, "shop.outbox"); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 9 {
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			id, err := WriteTable(ctx, tx, "shop.outbox", Event{Topic: e.topic, Key: []byte("k"), Payload: []byte(strconv.Itoa(i))})
			ids = append(ids, id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config("shop", 4)
	cfg.Table = "shop.outbox"
	r := e.startRelay(cfg)
	for {
		var unsent int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM shop.outbox WHERE state <> 'sent'`).Scan(&unsent); err != nil {
			t.Fatal(err)
		}
		if unsent == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d rows of shop.outbox not sent", unsent)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.states(ctx); len(s) != 0 {
		t.Errorf("weir_outbox touched: %v", s)
	}
	assertKeyOrder(t, e.assertExactlyOnce(ids))
}
