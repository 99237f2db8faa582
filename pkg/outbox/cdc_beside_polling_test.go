package outbox

import (
	"context"
	"strings"
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
// after both started is in the topic once, and a refusal names the
// polling relay. The relay's first start (not a separate setup, which
// refuses the same way) creates its publication and slot.
func TestCDCRelayRefusesATableAPollingRelayIsPublishing(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	first := e.placeOrders(1)
	poll := e.startRelay(e.config("p1", 0))
	e.waitPublishedWithin(first, 30*time.Second)

	// The relay's first start creates its publication and slot, or
	// refuses to.
	r := e.cdcRelay("c1")
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(cctx) }()
	stop := func() error { cancel(); err := <-done; done <- err; return err }
	t.Cleanup(func() {
		stop()
		if _, ok := e.slotConfirmed("c1"); ok {
			r.DropSlot(context.Background())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
wait:
	for {
		select {
		case err := <-done:
			done <- err
			break wait
		default:
		}
		if _, ok := e.slotConfirmed("c1"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("relay c1 neither has a slot nor stopped after 20 s")
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
	if cdcErr != nil && !strings.Contains(cdcErr.Error(), "polling relay") {
		t.Errorf("the change-data-capture relay stopped with %v; want its refusal to name the polling relay", cdcErr)
	}
	seen := idsOf(e.readTopic(kgo.ReadCommitted()))
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times; want exactly once", id, seen[id])
		}
	}
}
