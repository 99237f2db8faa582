package saga

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestNoStoreValueGrowsWithTheOutstandingOrders places 400 orders of
// 8 KB ids falling due in the same second: no value the order service
// stores exceeds a shard's bound, orders beyond the index's room are
// cancelled as overloaded (never silently dropped), and every indexed
// order is timed out when event time reaches its deadline.
func TestNoStoreValueGrowsWithTheOutstandingOrders(t *testing.T) {
	store, process := memStore{}, orderService(time.Second, time.Hour, time.Now)
	at := func(ms int64, m Message) {
		t.Helper()
		if _, err := process(context.Background(), &kgo.Record{Value: m.Encode(), Timestamp: time.UnixMilli(ms)}, store); err != nil {
			t.Fatal(err)
		}
	}
	pad := strings.Repeat("x", 8000)
	var ids []string
	for i := range 400 {
		id := strconv.Itoa(i) + pad
		ids = append(ids, id)
		at(10_000, Message{Type: OrderPlaced, Order: id, Customer: "c", Item: "i", Quantity: 1})
	}
	for k, v := range store {
		if len(v) > maxDueShardBytes {
			t.Fatalf("store value %.20q… is %d bytes, over %d", k, len(v), maxDueShardBytes)
		}
	}
	at(11_000, Message{Type: Tick})
	counts := map[string]int{}
	for _, id := range ids {
		o, err := loadOrder(store, id)
		if err != nil || o == nil {
			t.Fatalf("order %d: %v, %v", len(counts), o, err)
		}
		counts[o.Status+" "+o.Reason]++
	}
	if counts[Cancelled+" "+TimedOut]+counts[Cancelled+" "+Overloaded] != len(ids) || counts[Cancelled+" "+TimedOut] < 200 {
		t.Fatalf("outcomes %v: want every order timed out or shed, most timed out", counts)
	}
}
