package saga_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/saga"
)

// TestOrderServiceKeepsPlacingOrdersWhileManyAreOutstanding places
// orders while the inventory service is down, so that none of them
// progresses, and expects each to be placed (its AwaitingStock state
// committed). The order service keeps the index of a partition's
// outstanding orders as one store value, rewritten whole by every record
// and written to the changelog as one record; once the index outgrows
// the largest record a producer may send (1 MB: about 40,000 orders of
// 16-byte ids, or 200 of 8 KB ids here), every transaction of the
// partition fails, the worker exits, and its restarts fail the same way:
// the partition stops for good and none of its orders ever settles.
func TestOrderServiceKeepsPlacingOrdersWhileManyAreOutstanding(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	r := startRig(t, ctx, 1, 10*time.Minute, "order")
	var ids []string
	pad := strings.Repeat("x", 8000)
	for i := range 200 {
		m := saga.Message{Type: saga.OrderPlaced, Order: "o" + strconv.Itoa(i) + "-" + pad,
			Customer: customers[i%len(customers)], Item: items[i%len(items)], Quantity: 1, Amount: 10}
		ids = append(ids, m.Order)
		r.cl.Produce(ctx, &kgo.Record{Key: []byte(m.Order), Value: m.Encode()}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("placing: %v", err)
			}
		})
	}
	if err := r.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, ctx, 30*time.Second, "placed", ids, func(o saga.Order, ok bool) bool { return ok })
	if n := r.workers["order"].Restarts(); n > 0 {
		t.Fatalf("the order worker failed %d times", n)
	}
}
