package outbox

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSwitchingFromCDCToPollingByTheRefusalsRemedyLosesNoEvent switches a
// table from change data capture to polling as the polling relay's
// refusal says: "let that relay publish everything written so far, stop
// it, mark those rows sent (UPDATE ... SET state = 'sent' WHERE state =
// 'pending' AND id <= the last published id), then drop its slot and
// publication". An application transaction that inserted an event
// before a later one (a higher id) committed is still open when the
// change-data-capture relay stops, and commits before the UPDATE.
//
// The correct outcome: every event is published exactly once. What
// happens: the late row's id is below the last published id, so the
// UPDATE marks it sent; the change-data-capture relay never published it
// and its slot is dropped: it is lost.
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
	if refusal == nil || !strings.Contains(refusal.Error(), "id <= the last published id") {
		t.Fatalf("polling relay stopped with %v; want the refusal naming its remedy", refusal)
	}
	// The remedy, to the letter: the last published id is the id of the
	// last event in the topic.
	ps := e.readTopic(kgo.ReadCommitted())
	lastID := ps[len(ps)-1].id
	if _, err := e.pool.Exec(ctx, `UPDATE weir_outbox SET state = 'sent' WHERE state = 'pending' AND id <= `+strconv.FormatInt(lastID, 10)); err != nil {
		t.Fatal(err)
	}
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.DropSlot(context.Background()); err != nil {
		t.Fatal(err)
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
