package outbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSwitchingFromCDCToPollingByTheRefusalsRemedyLosesNoEvent switches a
// table from change data capture to polling as the polling relay's
// refusal says: stop the change-data-capture relay, then drop its slot
// and publication and mark sent the rows whose events are in their
// topics (weir outbox drop-slot --mark-published). An application
// transaction that inserted an event
// before a later one (a higher id) committed is still open when the
// change-data-capture relay stops, and commits before the UPDATE.
//
// Every event is published exactly once: the late row's id is below the
// last published id, but its event is not in the topic, so it stays
// pending (an id bound, the remedy the refusal once gave, marked it sent
// and lost it).
func TestSwitchingFromCDCToPollingByTheRefusalsRemedyLosesNoEvent(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("m2", 0)
	e.cdcSetupWith(cfg)
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	late, err := Write(ctx, tx, Event{Topic: e.topic, Key: []byte("k"), Payload: []byte("late")})
	if err != nil {
		t.Fatal(err)
	}
	ids := e.placeOrdersInTxns(2, 1)
	_, stop := e.startCDC("m2")
	e.waitSeen(ids, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	p := e.startRelay(e.config("m2", 0))
	var refusal error
	select {
	case refusal = <-p.done:
		p.done <- refusal
	case <-time.After(30 * time.Second):
		t.Fatal("polling relay runs on a table a change-data-capture relay's publication covers")
	}
	t.Logf("polling relay refused: %v", refusal)
	if refusal == nil || !strings.Contains(refusal.Error(), "--mark-published") {
		t.Fatalf("polling relay stopped with %v; want the refusal naming its remedy", refusal)
	}
	// The remedy, to the letter: drop the slot and publication, then
	// mark sent the rows whose events are in their topics.
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.DropSlot(context.Background()); err != nil {
		t.Fatal(err)
	}
	marked, err := r.MarkPublished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if marked != int64(len(ids)) {
		t.Errorf("MarkPublished marked %d rows sent; want the %d the change-data-capture relay published", marked, len(ids))
	}
	more := e.placeOrders(1)
	e.startRelay(e.config("m2", 0))
	e.waitSeen(more, 30*time.Second)
	time.Sleep(time.Second)
	seen := e.readSeen()
	for _, id := range append(append([]int64{late}, ids...), more...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times after switching to polling as the refusal says; want exactly once", id, seen[id])
		}
	}
}
