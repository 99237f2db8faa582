package outbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCDCColumnListGivenWhileRelayIsDownRemedyPublishesEveryEvent gives
// a change-data-capture relay's publication a column list (ALTER
// PUBLICATION ... SET TABLE weir_outbox (id, topic, event_uuid)) while the
// relay is down; an application transaction then commits an event. The
// relay refuses to start, naming the remedy: give the publication back
// its definition (ALTER PUBLICATION ... SET TABLE weir_outbox).
//
// The correct outcome: once that remedy is followed (with the rows the
// error says to publish some other way so published), every event is
// published exactly once, or the relay stops with an error whose remedy
// leads there. pgoutput reads the publication as of each change, so the
// slot streams the event committed under the column list without its
// key, payload and headers for ever: the relay stops on it at every
// start with the same remedy, already followed.
func TestCDCColumnListGivenWhileRelayIsDownRemedyPublishesEveryEvent(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("d2", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	_, stop := e.startCDC("d2")
	e.waitSeen(first, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` SET TABLE weir_outbox (id, topic, event_uuid)`); err != nil {
		t.Fatal(err)
	}
	underList := e.placeOrdersInTxns(1, 1)
	runErr := e.publishedOrRefusedSoft(e.cdcRelay("d2"), underList, 20*time.Second)
	t.Logf("relay started on the publication with a column list: %v", runErr)
	if runErr == nil {
		t.Fatal("relay published an event streamed without its key and payload")
	}
	if strings.Contains(runErr.Error(), "publish them some other way") {
		// The error (the start's) says the rows committed since the
		// last recorded position whose UUIDs are not in the topics are
		// the operator's.
		seen := e.readSeen()
		for _, id := range append(append([]int64{}, first...), underList...) {
			if seen[id] == 0 {
				e.publishOtherwise(id)
			}
		}
	}
	for _, q := range e.remedyOf(runErr, pub) {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatalf("remedy %q: %v", q, err)
		}
	}
	later := e.placeOrdersInTxns(1, 1)
	err := e.publishedOrRefusedSoft(e.cdcRelay("d2"), later, 20*time.Second)
	if err != nil {
		t.Fatalf("after the remedy of %q the relay stops again, publishing nothing: %v", runErr, err)
	}
	seen := e.readSeen()
	for _, id := range append(append(first, underList...), later...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times after the remedy; want exactly once", id, seen[id])
		}
	}
}

// TestCDCColumnListGivenWhileRunningRemedyPublishesEveryEvent gives a
// running change-data-capture relay's publication a column list, and an
// application transaction commits an event right after. The relay stops
// (on the relation streamed without the event's columns) with an error
// whose remedy is ALTER PUBLICATION ... SET TABLE weir_outbox, and which
// says that the rows committed meanwhile are streamed whole if the slot
// still holds them, the others to be published some other way.
//
// The correct outcome: after the remedy every event is published exactly
// once, or the relay stops with an error whose remedy leads there. The
// slot still holds the event, but streams it under the column list at
// every start: the relay stops again on it, with the remedy already
// followed.
func TestCDCColumnListGivenWhileRunningRemedyPublishesEveryEvent(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("d3", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	r := e.cdcRelay("d3")
	rctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitSeen(first, 30*time.Second)
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` SET TABLE weir_outbox (id, topic, event_uuid)`); err != nil {
		t.Fatal(err)
	}
	underList := e.placeOrdersInTxns(1, 1)
	runErr := <-done
	t.Logf("relay stopped: %v", runErr)
	if runErr == nil {
		t.Fatal("relay ran on under a column list")
	}
	for _, q := range e.remedyOf(runErr, pub) {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatalf("remedy %q: %v", q, err)
		}
	}
	if strings.Contains(runErr.Error(), "Publish some other way the rows committed since") {
		// The error (the table watch's) says the row is the operator's.
		e.publishOtherwise(underList[0])
	}
	later := e.placeOrdersInTxns(1, 1)
	err := e.publishedOrRefusedSoft(e.cdcRelay("d3"), later, 20*time.Second)
	if err != nil {
		t.Fatalf("after the remedy of %q the relay stops again, publishing nothing: %v", runErr, err)
	}
	time.Sleep(2 * time.Second)
	seen := e.readSeen()
	for _, id := range append(append(first, underList...), later...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times after the remedy; want exactly once", id, seen[id])
		}
	}
}
