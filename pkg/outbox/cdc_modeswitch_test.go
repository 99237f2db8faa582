package outbox

import (
	"testing"
	"time"
)

// TestSwitchingFromCDCToPollingPublishesNothingAgain publishes events
// with a change-data-capture relay, stops it, and runs the polling relay
// on the table afterwards (the package doc only forbids running the two
// at the same time). Each event must still be published once: the
// polling relay must not publish again what the change-data-capture
// relay published, nor start on a table whose rows it would publish
// again.
func TestSwitchingFromCDCToPollingPublishesNothingAgain(t *testing.T) {
	e := newCDCEnv(t)
	e.cdcSetup("m1")
	ids := e.placeOrdersInTxns(4, 2)
	_, stop := e.startCDC("m1")
	e.waitPublishedWithin(ids, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	more := e.placeOrders(2)
	p := e.startRelay(e.config("m1", 0))
	deadline := time.Now().Add(30 * time.Second)
	for e.states(testCtx(t))[StatePending] > 0 {
		select {
		case err := <-p.done:
			p.done <- err
			t.Logf("polling relay stopped: %v", err)
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows still pending after 30 s: %v", e.states(testCtx(t)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.assertExactlyOnce(append(ids, more...))
}
