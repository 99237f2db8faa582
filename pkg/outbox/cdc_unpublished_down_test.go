package outbox

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// unpublishedRemedy checks what a relay stopped for its table leaving
// its publication says of the events, and follows its remedy to the
// letter: "Publish some other way the rows committed since L whose event
// UUIDs are not in the topics", then put the table back and start the
// relay. committedBefore are events the test knows were committed before
// L (so not the operator's: each must be in the topic once); sinceLeft
// are events committed after the table left (so after L): those not in
// the topic are published some other way. Then every event, and one
// written after the remedy, must be in the topic exactly once.
func (e *env) unpublishedRemedy(runErr error, pub, relayID string, committedBefore, sinceLeft []int64) {
	e.t.Helper()
	ctx := testCtx(e.t)
	m := regexp.MustCompile(`Publish some other way the rows committed since (.+?) whose event UUIDs are not in the topics`).FindStringSubmatch(runErr.Error())
	if m == nil {
		e.t.Fatalf("error does not say which rows to publish some other way: %v", runErr)
	}
	if m[1] != "the slot's creation" {
		if _, err := pglogrepl.ParseLSN(m[1]); err != nil {
			e.t.Fatalf("error names position %q: %v", m[1], err)
		}
	}
	seen := e.readSeen()
	for _, id := range committedBefore {
		if seen[id] != 1 {
			e.t.Errorf("event %d, committed before %s, is in the topic %d times; the relay's error leaves no row committed before %s to the operator",
				id, m[1], seen[id], m[1])
		}
	}
	for _, id := range sinceLeft {
		if seen[id] == 0 {
			e.publishOtherwise(id)
		}
	}
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` ADD TABLE weir_outbox`); err != nil {
		e.t.Fatal(err)
	}
	later := e.placeOrdersInTxns(1, 1)
	if err := e.publishedOrRefusedSoft(e.cdcRelay(relayID), later, 20*time.Second); err != nil {
		e.t.Fatalf("after the remedy: %v", err)
	}
	time.Sleep(2 * time.Second)
	seen = e.readSeen()
	for _, id := range append(append(append([]int64{}, committedBefore...), sinceLeft...), later...) {
		if seen[id] != 1 {
			e.t.Errorf("event %d published %d times after the remedy of %q; want exactly once", id, seen[id], runErr)
		}
	}
}

// TestCDCTableTakenOutWhileRelayIsDownErrorSaysTheTruthOfEveryEvent takes
// the outbox table out of a change-data-capture relay's publication
// while the relay is down, under an application transaction that
// inserted an event before and commits after; another transaction
// inserts and commits an event while the table is out. The relay,
// started, publishes what its slot holds and stops, saying which rows
// are the operator's to publish some other way.
//
// The correct outcome: what it says holds: no event committed before
// the position it names is left to the operator unpublished, and once
// its remedy is followed to the letter every event is in the topic
// exactly once. (An earlier error said every event committed before its
// stop position was published, which the row inserted while the table
// was out is not, and that the rows committed since the table left were
// not in the topics, which the row the drain published is.)
func TestCDCTableTakenOutWhileRelayIsDownErrorSaysTheTruthOfEveryEvent(t *testing.T) {
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
	whileOut := e.placeOrdersInTxns(1, 1)

	runErr := e.publishedOrRefusedSoft(e.cdcRelay("d4"), []int64{-1}, 20*time.Second)
	t.Logf("relay started with its table out of the publication: %v", runErr)
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "Publish some other way the rows committed since") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged telling to publish the rows committed since some other way", runErr)
	}
	e.unpublishedRemedy(runErr, pub, "d4", first, append([]int64{open}, whileOut...))
}

// TestCDCTableTakenOutWhileRunningErrorSaysTheTruthOfEveryEvent is the
// same with the relay running: an event inserted and committed right
// after the table left the publication, before the relay's table watch
// (every 2 s) notices, is never streamed; the error must leave it to
// the operator, and its remedy must publish every event once.
func TestCDCTableTakenOutWhileRunningErrorSaysTheTruthOfEveryEvent(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("d6", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	r := e.cdcRelay("d6")
	rctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitSeen(first, 30*time.Second)
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` DROP TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	whileOut := e.placeOrdersInTxns(1, 1)
	runErr := <-done
	t.Logf("relay stopped: %v", runErr)
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "Publish some other way the rows committed since") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged telling to publish the rows committed since some other way", runErr)
	}
	// first may have committed after the position the error names (the
	// watch looks every 2 s): it is then among the rows the error
	// covers, and must be in the topic already.
	e.unpublishedRemedy(runErr, pub, "d6", nil, append(append([]int64{}, first...), whileOut...))
}
