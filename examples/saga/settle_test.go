package saga

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// runSaga passes records between the three services' Process functions,
// each over one in-memory store, in the order they are produced, each
// record stamped with the driver's clock; when nothing is left it moves
// the clock past the order timeout with a Tick, so that every deadline
// passes, and runs again until nothing is left. It returns the order
// service's store.
func runSaga(t *testing.T, timeout time.Duration, placed ...Message) memStore {
	t.Helper()
	type service struct {
		fn    eos.Process
		store memStore
	}
	orders := memStore{}
	services := map[string]service{
		OrdersTopic:    {OrderService(timeout), orders},
		InventoryTopic: {Inventory(), memStore{}},
		PaymentsTopic:  {Payment(), memStore{}},
	}
	now := int64(1_000_000)
	var queue []*kgo.Record
	for _, m := range placed {
		queue = append(queue, &kgo.Record{Topic: OrdersTopic, Key: []byte(m.Order), Value: m.Encode()})
	}
	drain := func() {
		for steps := 0; len(queue) > 0; steps++ {
			if steps > 10_000 {
				t.Fatal("the saga does not quiesce")
			}
			r := queue[0]
			queue = queue[1:]
			now += 10
			r.Timestamp = time.UnixMilli(now)
			s, ok := services[r.Topic]
			if !ok {
				continue // an output: a state change or a level
			}
			outs, err := s.fn(context.Background(), r, s.store)
			if err != nil {
				t.Fatalf("%s: %v", r.Topic, err)
			}
			queue = append(queue, outs...)
		}
	}
	drain()
	now += timeout.Milliseconds()
	queue = append(queue, &kgo.Record{Topic: OrdersTopic, Value: Message{Type: Tick}.Encode()})
	drain()
	return orders
}

// TestEveryOrderTheServiceAcceptsIsSettled checks the README's claim
// "every command is eventually answered, so every order becomes
// settled" for placements the order service accepts: an order without
// an item, without a customer, or with an item or customer name too long
// for a ledger key is placed (ReserveStock or Charge sent), but the
// ledger drops the command without a reply, so the order, cancelled at
// its deadline, waits for that reply for ever.
func TestEveryOrderTheServiceAcceptsIsSettled(t *testing.T) {
	long := strings.Repeat("x", eos.MaxKeyBytes)
	placed := []Message{
		{Type: OrderPlaced, Order: "ok", Customer: "c", Item: "i", Quantity: 1, Amount: 5},
		{Type: OrderPlaced, Order: "no-item", Customer: "c", Quantity: 1, Amount: 5},
		{Type: OrderPlaced, Order: "no-customer", Item: "i", Quantity: 1, Amount: 5},
		{Type: OrderPlaced, Order: "long-item", Customer: "c", Item: long, Quantity: 1, Amount: 5},
		{Type: OrderPlaced, Order: "long-customer", Customer: long, Item: "i", Quantity: 1, Amount: 5},
	}
	store := runSaga(t, time.Second, placed...)
	for _, m := range placed {
		o, err := loadOrder(store, m.Order)
		if err != nil {
			t.Fatal(err)
		}
		if o == nil {
			continue // refused at placement: never started, nothing to settle
		}
		if !o.Settled() {
			t.Errorf("order %s: %s %s, stock step %q, payment step %q: never settles", o.ID, o.Status, o.Reason, o.Stock, o.Payment)
		}
	}
	if o, _ := loadOrder(store, "ok"); o == nil || o.Status != Completed {
		t.Fatalf("the well-formed order: %+v, want Completed", o)
	}
}
