package outbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCDCPublicationWidenedWhileRunningRemedyPublishesEveryEvent has an
// operator add another table to a running change-data-capture relay's
// publication (ALTER PUBLICATION ... ADD TABLE orders); an application
// transaction then writes an order and its outbox event. The relay
// stops, as the package doc says, with an error naming the publication
// and its remedy: give the publication back its definition.
//
// The correct outcome: after that remedy the relay publishes the event
// of the transaction it stopped on, and a later one, each once (every
// outbox row committed after the slot exists is published, or the relay
// stops with an error that says what to do). The test follows the remedy
// and requires both events published, or the relay to stop again. A
// remedy of dropping the publication (for the relay to create it again)
// would be a dead end: the slot still holds WAL from before the
// publication was created again, pgoutput reads publications as of each
// change (PostgreSQL 15 answers "publication ... does not exist" for
// those), and the relay would retry every second for ever, publishing
// nothing. The slot also streams the row of orders again, whatever the
// publication is now: the relay must leave it out rather than stop.
func TestCDCPublicationWidenedWhileRunningRemedyPublishesEveryEvent(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("w1", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitSeen(first, 30*time.Second)
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` ADD TABLE orders`); err != nil {
		t.Fatal(err)
	}
	stoppedOn := e.placeOrders(1)
	runErr := <-done
	t.Logf("relay stopped: %v", runErr)
	remedy := "ALTER PUBLICATION " + pub + " SET TABLE \"public\".\"weir_outbox\""
	if runErr == nil || !strings.Contains(runErr.Error(), remedy) {
		t.Fatalf("relay stopped with %v; want the error naming the publication and its remedy (%s)", runErr, remedy)
	}

	// The remedy the error gives: the publication's definition back.
	if _, err := e.pool.Exec(ctx, remedy); err != nil {
		t.Fatal(err)
	}
	later := e.placeOrdersInTxns(1, 1)
	err = e.publishedOrRefused(e.cdcRelay("w1"), append(stoppedOn, later...), 20*time.Second)
	t.Logf("after the remedy: %v", err)
	if err != nil {
		return // stopped again, with an error saying so
	}
	seen := e.readSeen()
	for _, id := range append(append(first, stoppedOn...), later...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times; want once", id, seen[id])
		}
	}
}
