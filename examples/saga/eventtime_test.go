package saga_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/saga"
)

// TestOneRecordStampedInTheFutureDoesNotTimeOutOrdersServedInTime
// writes one Tick stamped an hour ahead to the orders topic — what an
// order worker or a client whose clock is an hour fast writes — while
// every service is up. Orders placed after it, answered by every
// service within their timeout, must still complete. The order service
// takes the largest timestamp it has read as the partition's event
// time, so the stray record makes every deadline of the next hour
// already past: each order is cancelled by "timeout" at the next record
// after its placement.
func TestOneRecordStampedInTheFutureDoesNotTimeOutOrdersServedInTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	r := startRig(t, ctx, 1, 20*time.Second, saga.Services...)
	completed := func(o saga.Order, ok bool) bool { return ok && o.Status == saga.Completed }
	r.waitFor(t, ctx, 20*time.Second, "completed before the stray record", r.place(t, ctx, "before-", 0, 5), completed)

	stray := &kgo.Record{Value: saga.Message{Type: saga.Tick}.Encode(), Timestamp: time.Now().Add(time.Hour)}
	if err := r.cl.ProduceSync(ctx, stray).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, ctx, 20*time.Second, "completed after the stray record", r.place(t, ctx, "after-", 5, 5), func(o saga.Order, ok bool) bool {
		if ok && o.Terminal() && o.Status != saga.Completed {
			t.Fatalf("order %s served in time was %s (%s) after one record stamped an hour ahead", o.ID, o.Status, o.Reason)
		}
		return completed(o, ok)
	})
}
