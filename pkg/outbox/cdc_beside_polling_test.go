package outbox

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCDCRelayRefusesATableAPollingRelayIsPublishing runs a polling relay
// on the outbox table and then starts a change-data-capture relay (another
// relay id) on the same table. The package doc says that one relay id
// streams a table and a second refuses to start, that the polling relay
// refuses a table a change-data-capture publication covers "since it
// would publish those pending rows again", and that nothing is published
// twice; the README says the CDC mode "runs one relay id per table (a
// second one refuses to start)".
//
// The correct outcome: the change-data-capture relay refuses to start
// (or the polling relay stops), and every event written afterwards is
// published exactly once. What the test checks: each event committed
// after both started is in the topic once.
func TestCDCRelayRefusesATableAPollingRelayIsPublishing(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	first := e.placeOrders(1)
	poll := e.startRelay(e.config("p1", 0))
	e.waitPublishedWithin(first, 30*time.Second)

	e.cdcSetup("c1") // the relay's first start, as below
	_, stop := e.startCDC("c1")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok := e.slotConfirmed("c1"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot for relay c1 after 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let it stream, or refuse

	ids := e.placeOrdersInTxns(4, 1)
	deadline = time.Now().Add(20 * time.Second)
	for e.states(ctx)[StatePending]+e.states(ctx)[StateClaimed] > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // what the other relay publishes
	cdcErr := stop()
	pollErr := poll.stop()
	t.Logf("cdc relay: %v; polling relay: %v", cdcErr, pollErr)
	seen := idsOf(e.readTopic(kgo.ReadCommitted()))
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times; want exactly once", id, seen[id])
		}
	}
}
