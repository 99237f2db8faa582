package saga

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestOrderServiceCancelsByEventTimeNotArrival checks the timeout
// mechanism: an order is cancelled by the first record of its partition
// stamped at or past its deadline (a tick, or the late reply itself,
// which is then compensated), never by a record stamped before it.
func TestOrderServiceCancelsByEventTimeNotArrival(t *testing.T) {
	store, process := memStore{}, OrderService(time.Second)
	at := func(ms int64, m Message) []*kgo.Record {
		t.Helper()
		outs, err := process(context.Background(), &kgo.Record{Value: m.Encode(), Timestamp: time.UnixMilli(ms)}, store)
		if err != nil {
			t.Fatal(err)
		}
		return outs
	}
	order := Message{Type: OrderPlaced, Order: "o", Customer: "c", Item: "i", Quantity: 1, Amount: 5}
	at(10_000, order)
	at(10_500, Message{Type: StockReserved, Order: "o"})
	at(10_999, Message{Type: Tick})
	if o, _ := loadOrder(store, "o"); o.Status != AwaitingPayment {
		t.Fatalf("before the deadline: %s", o.Status)
	}
	// The payment's success, stamped after the deadline: the order times
	// out first (releasing the stock), then the charge is refunded.
	outs := at(11_000, Message{Type: PaymentSucceeded, Order: "o"})
	var sent []string
	for _, r := range outs {
		if r.Topic != StatesTopic {
			m, _ := Decode(r.Value)
			sent = append(sent, m.Type)
		}
	}
	o, _ := loadOrder(store, "o")
	if o.Status != Cancelled || o.Reason != TimedOut || join(sent) != ReleaseStock+","+Refund {
		t.Fatalf("late success: %+v, sent %v; want cancelled by timeout, ReleaseStock then Refund", o, sent)
	}
	// An older record arriving later does not move event time back.
	at(10_100, Message{Type: Tick})
	if now, _ := advanceClock(store, 0); now != 11_000 {
		t.Fatalf("event time %d after an older record, want 11000", now)
	}
	if ok, _ := isIndexed(store, o); ok {
		t.Fatalf("order %s still indexed as pending after it became terminal", o.ID)
	}
}

// TestEventTimeIgnoresTimestampsBeyondTheSkewBound checks the bound on a
// producer's clock: a record stamped more than the skew ahead of the
// worker's wall clock does not advance event time (nor overflow a
// deadline), and one within the bound does.
func TestEventTimeIgnoresTimestampsBeyondTheSkewBound(t *testing.T) {
	wall := time.UnixMilli(50_000)
	store, process := memStore{}, orderService(time.Second, 2*time.Second, func() time.Time { return wall })
	at := func(ms int64, m Message) {
		t.Helper()
		if _, err := process(context.Background(), &kgo.Record{Value: m.Encode(), Timestamp: time.UnixMilli(ms)}, store); err != nil {
			t.Fatal(err)
		}
	}
	at(50_000, Message{Type: Tick})
	at(math.MaxInt64/1_000_000, Message{Type: OrderPlaced, Order: "o", Customer: "c", Item: "i", Quantity: 1})
	if now, _ := advanceClock(store, 0); now != 50_000 {
		t.Fatalf("event time %d after records stamped beyond the bound, want 50000", now)
	}
	if o, _ := loadOrder(store, "o"); o == nil || o.DeadlineMs != 51_000 || o.Status != AwaitingStock {
		t.Fatalf("order placed by a record stamped far ahead: %+v, want deadline 51000 from event time", o)
	}
	at(51_999, Message{Type: Tick})
	if o, _ := loadOrder(store, "o"); o.Status != Cancelled || o.Reason != TimedOut {
		t.Fatalf("a record within the bound past the deadline: %+v, want cancelled by timeout", o)
	}
}
