package saga_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/internal/exampletest"
	"github.com/weir-broker/weir/examples/saga"
)

// rig is a broker and one worker process per service, on topics of
// parts partitions, for the tests that check one property each.
type rig struct {
	addr    string
	cl      *kgo.Client // produces to the orders topic, keyed by order
	workers map[string]*exampletest.Service
}

// startRig starts the broker, creates the saga's topics and starts a
// worker for each of services with the given order timeout.
func startRig(t *testing.T, ctx context.Context, parts int32, orderTimeout time.Duration, services ...string) *rig {
	t.Helper()
	r := &rig{addr: exampletest.FreeAddr(t), workers: map[string]*exampletest.Service{}}
	broker := exampletest.NewService("broker", weirBin, "serve", "--listen", r.addr, "--data", t.TempDir(),
		"--set", "group.initial.rebalance.delay.ms=0")
	all := []*exampletest.Service{broker}
	t.Cleanup(func() {
		for _, s := range all {
			s.Stop()
		}
		if t.Failed() {
			for _, s := range all {
				out := s.Log()
				if len(out) > 4000 {
					out = "…" + out[len(out)-4000:]
				}
				t.Logf("%s output:\n%s", s.Name, out)
			}
		}
	})
	broker.Start(t)
	exampletest.WaitListening(t, r.addr)
	var err error
	r.cl, err = kgo.NewClient(kgo.SeedBrokers(r.addr), kgo.DefaultProduceTopic(saga.OrdersTopic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.cl.Close)
	adm := kadm.NewClient(r.cl)
	for _, topic := range []string{saga.OrdersTopic, saga.InventoryTopic, saga.PaymentsTopic,
		saga.StatesTopic, saga.StockTopic, saga.BalancesTopic} {
		if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	for _, svc := range services {
		id := svc + "-0"
		w := exampletest.NewService(id, workerBin, "--brokers", r.addr, "--service", svc, "--id", id,
			"--state", filepath.Join(t.TempDir(), id), "--order-timeout", orderTimeout.String(), "--tick", "300ms")
		all = append(all, w)
		r.workers[svc] = w
		w.Start(t)
	}
	return r
}

// place writes orders n0 to n0+n-1 to the orders topic, keyed by order,
// one of item i (i cycling through items) for customer c, quantity 1.
func (r *rig) place(t *testing.T, ctx context.Context, prefix string, n0, n int) []string {
	t.Helper()
	var ids []string
	for i := n0; i < n0+n; i++ {
		m := saga.Message{Type: saga.OrderPlaced, Order: prefix + strconv.Itoa(i), Customer: customers[i%len(customers)],
			Item: items[i%len(items)], Quantity: 1, Amount: 10}
		ids = append(ids, m.Order)
		r.cl.Produce(ctx, &kgo.Record{Key: []byte(m.Order), Value: m.Encode()}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("placing %s: %v", m.Order, err)
			}
		})
	}
	if err := r.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

// states reads the order states read_committed: each order's last state
// and the terminal statuses it entered.
func (r *rig) states(t *testing.T, ctx context.Context) (last map[string]saga.Order, terminal map[string][]string) {
	t.Helper()
	last, terminal = map[string]saga.Order{}, map[string][]string{}
	exampletest.ReadAll(t, ctx, r.addr, saga.StatesTopic, func(rec *kgo.Record) {
		var sc saga.StateChange
		if err := json.Unmarshal(rec.Value, &sc); err != nil {
			t.Fatalf("state %q: %v", rec.Value, err)
		}
		if sc.Entered == saga.Completed || sc.Entered == saga.Cancelled {
			terminal[sc.Order.ID] = append(terminal[sc.Order.ID], sc.Entered)
		}
		last[sc.Order.ID] = sc.Order
	})
	return last, terminal
}

// waitFor polls the order states until cond holds for every id, or fails
// with each id's last state after within.
func (r *rig) waitFor(t *testing.T, ctx context.Context, within time.Duration, what string, ids []string, cond func(saga.Order, bool) bool) map[string]saga.Order {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		last, _ := r.states(t, ctx)
		var bad []string
		for _, id := range ids {
			o, ok := last[id]
			switch {
			case cond(o, ok):
			case !ok:
				bad = append(bad, "no state for "+id[:min(len(id), 24)])
			default:
				b, _ := json.Marshal(o)
				bad = append(bad, string(b))
			}
		}
		if len(bad) == 0 {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders not %s, e.g. %v", len(bad), len(ids), what, bad[:min(3, len(bad))])
		}
		time.Sleep(500 * time.Millisecond)
	}
}
