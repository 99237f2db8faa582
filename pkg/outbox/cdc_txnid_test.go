package outbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCDCRelayIsNotFencedByAPollingRelayOfAnotherID runs a
// change-data-capture relay with id "orders" and, on another database, a
// polling relay with id "cdc-orders". The ids differ, as RelayConfig
// asks (one id per relay, across tables and databases), so neither may
// fence the other: the change-data-capture relay keeps running and
// publishes the events written after the polling relay started.
func TestCDCRelayIsNotFencedByAPollingRelayOfAnotherID(t *testing.T) {
	e := newCDCEnv(t)
	e.cdcSetup("orders")
	first := e.placeOrdersInTxns(2, 1)
	cdc := e.cdcRelay("orders")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cdc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; done <- nil })
	e.waitPublishedWithin(first, 30*time.Second)

	p := newEnvOn(t, e.brokers, "orders-poll")
	pollIDs := p.placeOrders(3)
	p.startRelay(p.config("cdc-orders", 0))
	p.waitAllSent(len(pollIDs))

	more := e.placeOrdersInTxns(2, 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("cdc relay %q stopped after polling relay %q started elsewhere: %v (fenced: %v)",
				"orders", "cdc-orders", err, errors.Is(err, ErrFenced))
		default:
		}
		seen := idsOf(e.readTopic(kgo.ReadCommitted()))
		if seen[more[0]] > 0 && seen[more[1]] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %v not published within 30 s", more)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.assertExactlyOnce(append(first, more...))
}
