package outbox

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCDCTableTakenOutWhileRelayIsDownErrorNamesNoPublishedRowAsUnpublished
// takes the outbox table out of a change-data-capture relay's publication
// while the relay is down, under an application transaction that inserted
// an event before and commits after. The relay, started, publishes what
// its slot holds and stops with an error telling the operator to publish
// some other way the rows committed since the table left (their event
// UUIDs are not in the topics), then to put the table back.
//
// The correct outcome: every event is in the topic exactly once after
// that remedy; in particular no event the error tells the operator to
// publish is in the topic already. When the relay was running, it records
// where it stopped and never publishes such a row; started after the
// change, its drain runs to the WAL position at its start and publishes
// it.
func TestCDCTableTakenOutWhileRelayIsDownErrorNamesNoPublishedRowAsUnpublished(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("d4", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	_, stop := e.startCDC("d4")
	e.waitSeen(first, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	open, err := Write(ctx, tx, Event{Topic: e.topic, Key: []byte("k"), Payload: []byte("open")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` DROP TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil { // committed after the table left
		t.Fatal(err)
	}

	runErr := e.publishedOrRefusedSoft(e.cdcRelay("d4"), []int64{-1}, 20*time.Second)
	t.Logf("relay started with its table out of the publication: %v", runErr)
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "Publish some other way the rows committed since") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged telling to publish the rows committed since some other way", runErr)
	}
	if n := e.readSeen()[open]; n != 0 {
		t.Errorf("event %d, committed after the table left the publication, is in the topic %d times; the relay's error says "+
			"the rows committed since have event UUIDs not in the topics and must be published some other way", open, n)
	}
	// The remedy, to the letter.
	e.publishOtherwise(open)
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` ADD TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	later := e.placeOrdersInTxns(1, 1)
	if err := e.publishedOrRefusedSoft(e.cdcRelay("d4"), later, 20*time.Second); err != nil {
		t.Fatalf("after the remedy: %v", err)
	}
	time.Sleep(2 * time.Second)
	seen := e.readSeen()
	for _, id := range append(append(first, open), later...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times after the remedy; want exactly once", id, seen[id])
		}
	}
}
