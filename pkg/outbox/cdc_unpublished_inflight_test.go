package outbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCDCTableTakenOutOfItsPublicationUnderAnOpenTransactionPublishesNothingTwice
// takes the outbox table out of a running change-data-capture relay's
// publication (ALTER PUBLICATION ... DROP TABLE, which does not wait for
// transactions writing to the table) while an application transaction
// that inserted an event is still open; that transaction commits after
// the relay stopped. The relay's error says that rows committed since the
// table left the publication are never streamed, that their event UUIDs
// are not in the topics, and that they must be published some other way
// once the table is put back and the relay started again.
//
// The test follows that remedy to the letter: it publishes the event
// committed while the table was out (its UUID is not in the topic), puts
// the table back and starts the relay. The correct outcome: every event
// is in the topic exactly once. The relay must not publish again the
// event it said it would never stream (or its error must not tell the
// operator to publish it).
func TestCDCTableTakenOutOfItsPublicationUnderAnOpenTransactionPublishesNothingTwice(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("o1", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(2, 1)
	r := e.cdcRelay("o1")
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitPublishedWithin(first, 30*time.Second)

	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	open, err := Write(ctx, tx, Event{Topic: e.topic, Key: []byte("k"), Payload: []byte("open")})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	if _, err := e.pool.Exec(actx, `ALTER PUBLICATION `+pub+` DROP TABLE weir_outbox`); err != nil {
		t.Fatalf("ALTER PUBLICATION ... DROP TABLE under an open insert: %v", err)
	}

	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("relay runs on after its outbox table left its publication")
	}
	t.Logf("relay stopped: %v", runErr)
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "ADD TABLE") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged saying to put the table back", runErr)
	}
	if err := tx.Commit(ctx); err != nil { // committed while the table is out
		t.Fatal(err)
	}
	if idsOf(e.readTopic(kgo.ReadCommitted()))[open] != 0 {
		t.Fatalf("event %d published before its transaction committed", open)
	}

	// The remedy: publish the event committed while the table was out
	// some other way, put the table back, start the relay again.
	var ev claimed
	ev.id, ev.topic = open, e.topic
	if err := e.pool.QueryRow(ctx, `SELECT event_uuid::text, key, payload FROM weir_outbox WHERE id = $1`, open).
		Scan(&ev.uuid, &ev.key, &ev.payload); err != nil {
		t.Fatal(err)
	}
	if err := e.client().ProduceSync(ctx, eventRecord(ev)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` ADD TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	later := e.placeOrdersInTxns(2, 1)
	_, stop := e.startCDC("o1")
	defer stop()
	e.waitSeen(later, 30*time.Second)
	time.Sleep(2 * time.Second) // anything else the relay publishes
	seen := idsOf(e.readTopic(kgo.ReadCommitted()))
	for _, id := range append(append(append([]int64{}, first...), open), later...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times after the error's remedy; want exactly once", id, seen[id])
		}
	}
}
