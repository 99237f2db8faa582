package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCDCPublishesNoEventWithoutItsUUID drops the event_uuid column under
// a running change-data-capture relay (a schema tool that does not know
// the column, say), then writes events. The package doc says every
// published record carries weir-event-uuid, the key to deduplicate on,
// and the relay refuses to start on a table without the column (as the
// polling relay stops): a running relay must not publish events without
// it either, which consumers deduplicating on the UUID cannot recognise.
func TestCDCPublishesNoEventWithoutItsUUID(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("u1")
	first := e.placeOrdersInTxns(2, 1)
	r := e.cdcRelay("u1")
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { cancel(); <-done }()
	e.waitPublishedWithin(first, 30*time.Second)

	if _, err := e.pool.Exec(ctx, `ALTER TABLE weir_outbox DROP COLUMN event_uuid`); err != nil {
		t.Fatal(err)
	}
	e.placeOrdersInTxns(2, 1)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range e.readTopic(kgo.ReadCommitted()) {
			if p.headers[EventUUIDHeader] == "" {
				t.Fatalf("event %d published without %s (headers %v)", p.id, EventUUIDHeader, p.headers)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}
