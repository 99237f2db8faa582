package outbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCDCOutboxTableCreatedAgainIsPublishedOrRefused drops the outbox
// table under a running change-data-capture relay and creates it again
// with Migrate (an outbox reset), then writes events to the new table.
// Each must be published once, or the relay must stop with an error; it
// must not run on publishing nothing. When it refuses, the remedy its
// error gives (retire the relay id, publish the pending rows with the
// polling relay) must lead to every event of the new table being
// published, each once.
func TestCDCOutboxTableCreatedAgainIsPublishedOrRefused(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("t1")
	first := e.placeOrdersInTxns(2, 1)
	r := e.cdcRelay("t1")
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitPublishedWithin(first, 30*time.Second)

	if _, err := e.pool.Exec(ctx, `DROP TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	// The new table's ids start over: a topic of their own.
	e.topic = "orders-cdc-2"
	e.createTopic()
	again := e.placeOrdersInTxns(3, 1)

	deadline := time.Now().Add(10 * time.Second)
	var runErr error
	for runErr == nil {
		select {
		case runErr = <-done:
			continue
		default:
		}
		seen := idsOf(e.readTopic(kgo.ReadCommitted()))
		if len(seen) == len(again) {
			cancel()
			<-done
			e.assertExactlyOnce(again)
			return
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Errorf("the relay runs on but published %d of the %d events written to the outbox table created again", len(seen), len(again))
			// Restarted, it looks at its publication again.
			runErr = runUntilRefused(t, e.cdcRelay("t1"), 30*time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	t.Logf("relay stopped: %v", runErr)
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "drop-slot") {
		t.Fatalf("relay stopped with %v; want ErrSourceChanged naming its remedy", runErr)
	}
	// Follow the error's remedy: retire the relay id, then the polling
	// relay publishes the new table's pending rows.
	if _, _, err := e.cdcRelay("t1").DropSlot(ctx); err != nil {
		t.Fatal(err)
	}
	poll := e.startRelay(e.config("p1", 0))
	e.waitPublishedWithin(again, 15*time.Second)
	if err := poll.stop(); err != nil {
		t.Fatal(err)
	}
	e.assertExactlyOnce(again)
}
