package outbox

import (
	"strings"
	"testing"
	"time"
)

// publishOtherwise publishes event id to the topic with a plain producer,
// as an operator following a relay's "publish it some other way" does.
func (e *env) publishOtherwise(id int64) {
	e.t.Helper()
	ctx := testCtx(e.t)
	ev := claimed{id: id, topic: e.topic}
	if err := e.pool.QueryRow(ctx, `SELECT event_uuid::text, key, payload FROM weir_outbox WHERE id = $1`, id).
		Scan(&ev.uuid, &ev.key, &ev.payload); err != nil {
		e.t.Fatal(err)
	}
	if err := e.client().ProduceSync(ctx, eventRecord(ev)).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// remedyOf returns the SQL statements of the publication remedy an error
// gives (ALTER PUBLICATION ... SET TABLE ...; ALTER PUBLICATION ... SET
// (publish = 'insert')), failing the test if it gives none.
func (e *env) remedyOf(err error, pub string) []string {
	e.t.Helper()
	msg := err.Error()
	i := strings.Index(msg, "(ALTER PUBLICATION "+pub+" SET TABLE ")
	if i < 0 {
		e.t.Fatalf("error gives no ALTER PUBLICATION ... SET TABLE remedy: %v", err)
	}
	rest := msg[i+1:]
	end := strings.Index(rest, "'))")
	if end < 0 {
		end = strings.Index(rest, ")")
		return []string{rest[:end]}
	}
	var out []string
	for _, s := range strings.Split(rest[:end+2], "; ") {
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// TestCDCInsertsTurnedOffWhileRelayIsDownRemedyLosesNoEvent turns the
// inserts off in a change-data-capture relay's publication (ALTER
// PUBLICATION ... SET (publish = 'delete')) while the relay is down; an
// application transaction then commits an event. The relay refuses to
// start, naming the publication and its remedy: give it back its
// definition, then start the relay again.
//
// The correct outcome: once the remedy is followed, every event is
// published exactly once, or the relay stops with an error saying which
// rows to publish some other way. The event committed while the inserts
// were off is not in the slot's stream at all (pgoutput reads the
// publication as of each change); a start that refuses the publication
// must record its stop position and say that such rows are to be
// published some other way, as a relay that sees the change while it
// runs does; the test then does so, as an operator would, and checks
// that each event ends up in the topic exactly once.
func TestCDCInsertsTurnedOffWhileRelayIsDownRemedyLosesNoEvent(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("d1", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	_, stop := e.startCDC("d1")
	e.waitSeen(first, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` SET (publish = 'delete')`); err != nil {
		t.Fatal(err)
	}
	whileOff := e.placeOrdersInTxns(1, 1)
	runErr := e.publishedOrRefusedSoft(e.cdcRelay("d1"), whileOff, 20*time.Second)
	t.Logf("relay started on the altered publication: %v", runErr)
	if runErr == nil {
		return // published it after all
	}
	if !strings.Contains(runErr.Error(), "publish them some other way") {
		t.Fatalf("the relay's error names no rows to publish some other way, though the stream lost those committed while the inserts were off: %v", runErr)
	}
	// As the error says: the events committed since the relay's last
	// recorded position whose UUIDs are not in the topics are published
	// some other way.
	seen := e.readSeen()
	for _, id := range append(append([]int64{}, first...), whileOff...) {
		if seen[id] == 0 {
			e.publishOtherwise(id)
		}
	}
	for _, q := range e.remedyOf(runErr, pub) {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatalf("remedy %q: %v", q, err)
		}
	}
	later := e.placeOrdersInTxns(1, 1)
	err := e.publishedOrRefusedSoft(e.cdcRelay("d1"), later, 20*time.Second)
	t.Logf("after the remedy: %v", err)
	if err != nil {
		t.Fatalf("after its own remedy the relay stopped again: %v", err)
	}
	time.Sleep(2 * time.Second)
	seen = e.readSeen()
	for _, id := range append(append(first, whileOff...), later...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times after the remedy of the error %q; want exactly once (or an error saying to publish it some other way)", id, seen[id], runErr)
		}
	}
}
