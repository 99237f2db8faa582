package outbox

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
)

// placeOrdersIn writes n events to table, one per transaction, for topic.
func (e *env) placeOrdersIn(table, topic string, n int) []int64 {
	e.t.Helper()
	ctx := testCtx(e.t)
	var ids []int64
	for i := range n {
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			id, err := WriteTable(ctx, tx, table, Event{Topic: topic, Key: []byte(fmt.Sprintf("c%d", i)), Payload: []byte(table)})
			ids = append(ids, id)
			return err
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return ids
}

// TestCDCSameTableNameInTwoSchemasEachPublishedByItsRelay runs one relay
// on public.weir_outbox and one on app.weir_outbox in the same database:
// each table's events are published exactly once, by its own relay.
func TestCDCSameTableNameInTwoSchemasEachPublishedByItsRelay(t *testing.T) {
	pub := newCDCEnv(t)
	ctx := testCtx(t)
	if _, err := pub.pool.Exec(ctx, `CREATE SCHEMA app`); err != nil {
		t.Fatal(err)
	}
	if err := MigrateTable(ctx, pub.pool, "app.weir_outbox"); err != nil {
		t.Fatal(err)
	}
	app := *pub
	app.topic = "orders-app"
	resp, err := kadm.NewClient(pub.client()).CreateTopic(ctx, 1, 1, nil, app.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	pubCfg := pub.config("pub", 0)
	appCfg := pub.config("app", 0)
	appCfg.Table = "app.weir_outbox"
	pub.cdcSetupWith(pubCfg)
	pub.cdcSetupWith(appCfg)
	pubIDs := pub.placeOrdersIn(DefaultTable, pub.topic, 4)
	appIDs := pub.placeOrdersIn("app.weir_outbox", app.topic, 3)

	rp, stopPub := pub.startCDCWith(pubCfg)
	ra, stopApp := pub.startCDCWith(appCfg)
	pub.waitPublishedWithin(pubIDs, 30*time.Second)
	app.waitPublishedWithin(appIDs, 30*time.Second)
	if err := stopPub(); err != nil {
		t.Fatal(err)
	}
	if err := stopApp(); err != nil {
		t.Fatal(err)
	}
	// Published exactly once in each topic, and each by its own relay.
	pub.assertExactlyOnce(pubIDs)
	app.assertExactlyOnce(appIDs)
	if got := rp.Stats().Events; got != int64(len(pubIDs)) {
		t.Errorf("relay of public.weir_outbox published %d events, want %d", got, len(pubIDs))
	}
	if got := ra.Stats().Events; got != int64(len(appIDs)) {
		t.Errorf("relay of app.weir_outbox published %d events, want %d", got, len(appIDs))
	}
}

// TestCDCRefusesRowsOfAnotherTable adds a second outbox table to a
// running relay's publication behind its back: the relay must not
// publish that table's rows, and stops with an error naming it.
func TestCDCRefusesRowsOfAnotherTable(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	if _, err := e.pool.Exec(ctx, `CREATE SCHEMA other`); err != nil {
		t.Fatal(err)
	}
	if err := MigrateTable(ctx, e.pool, "other.weir_outbox"); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("c1", 0)
	e.cdcSetupWith(cfg)
	_, pubName := e.cdcNames(cfg)
	ids := e.placeOrdersInTxns(2, 1)
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitPublishedWithin(ids, 30*time.Second)
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pubName+` ADD TABLE other.weir_outbox`); err != nil {
		t.Fatal(err)
	}
	e.placeOrdersIn("other.weir_outbox", e.topic, 1)
	err = <-done
	if rctx.Err() != nil || err == nil || !strings.Contains(err.Error(), "other.weir_outbox") {
		t.Fatalf("run: %v (deadline passed: %v); want it to stop on the row of other.weir_outbox", err, rctx.Err() != nil)
	}
	e.assertExactlyOnce(ids)
}

// TestCDCRefusesAPublicationOfOtherTables finds the relay's publication
// already created, for another table: the relay must not stream it.
func TestCDCRefusesAPublicationOfOtherTables(t *testing.T) {
	e := newCDCEnv(t)
	cfg := e.config("c1", 0)
	_, pubName := e.cdcNames(cfg)
	if _, err := e.pool.Exec(testCtx(t), `CREATE PUBLICATION `+pubName+` FOR TABLE orders`); err != nil {
		t.Fatal(err)
	}
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = runUntilRefused(t, r, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), pubName) {
		t.Fatalf("run: %v; want a refusal naming publication %s", err, pubName)
	}
}

// TestCDCSecondRelayIDOnATableRefusesToStart starts a relay under a
// second relay id on a table a relay already streams: each slot streams
// every insert, so both would publish every event. The second refuses to
// start, naming the first one's publication, and the first publishes
// each event once.
func TestCDCSecondRelayIDOnATableRefusesToStart(t *testing.T) {
	e := newCDCEnv(t)
	e.cdcSetup("c1")
	ids := e.placeOrdersInTxns(2, 1)
	_, stop := e.startCDC("c1")
	e.waitPublished(ids)
	_, pub1 := e.cdcNames(e.config("c1", 0))
	err := runUntilRefused(t, e.cdcRelay("c2"), 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), pub1) {
		t.Fatalf("second relay id: %v; want a refusal naming %s", err, pub1)
	}
	more := e.placeOrdersInTxns(2, 1)
	e.waitPublishedWithin(append(ids, more...), 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Once the first relay's slot and publication are dropped, the
	// second may take over the table.
	slot, pub, err := e.cdcRelay("c1").DropSlot(testCtx(t))
	if err != nil || pub != pub1 || slot != e.slotName("c1") {
		t.Fatalf("drop: slot %s, publication %s, %v", slot, pub, err)
	}
	e.cdcSetup("c2")
	last := e.placeOrdersInTxns(1, 1)
	_, stop2 := e.startCDC("c2")
	e.waitPublishedWithin(append(append(ids, more...), last...), 30*time.Second)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

// TestCDCRefusesATableAnEarlierVersionStreams finds the publication an
// earlier version created for the table (weir_outbox_cdc): its slot
// still streams the table, so the relay refuses to start beside it.
func TestCDCRefusesATableAnEarlierVersionStreams(t *testing.T) {
	e := newCDCEnv(t)
	if _, err := e.pool.Exec(testCtx(t), `CREATE PUBLICATION weir_outbox_cdc FOR TABLE weir_outbox WITH (publish = 'insert')`); err != nil {
		t.Fatal(err)
	}
	err := runUntilRefused(t, e.cdcRelay("c1"), 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "weir_outbox_cdc") {
		t.Fatalf("run: %v; want a refusal naming weir_outbox_cdc", err)
	}
}
