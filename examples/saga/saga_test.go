package saga_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/internal/exampletest"
	"github.com/weir-broker/weir/examples/saga"
	"github.com/weir-broker/weir/internal/testsvc"
)

var longRun = flag.Bool("saga.long", false, "run the kill test for minutes with more orders")

var weirBin, workerBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(exampletest.WithBinaries("saga", map[*string]string{&weirBin: testsvc.WeirPackage, &workerBin: "./worker"}, m.Run))
}

const (
	orderTimeout = 3 * time.Second
	pauseFor     = 5 * time.Second // a whole service down: longer than orderTimeout
)

var (
	items     = []string{"apple", "bolt", "cable", "drill", "easel", "funnel", "glove", "hammer"}
	customers = []string{"ada", "bo", "cy", "dee", "eli", "fay", "gus", "hal", "ivy", "jo"}
)

// TestEveryOrderReachesOneTerminalStateAcrossWorkerAndBrokerKills runs
// the saga's three services as two worker processes each while orders
// flow, SIGKILLs workers at random moments (restarting each shortly
// after), kills the broker once, and takes the whole inventory service
// and later the whole payment service down for longer than an order's
// timeout, so that orders time out at each step and the late replies
// arrive after. When every order is settled, read_committed: each order
// entered exactly one terminal state and stayed in it; each reservation
// and charge of an order that did not complete was compensated exactly
// once and no other was; each item's stock is its initial stock minus
// the quantities of its completed orders and each customer's balance its
// initial balance minus the amounts of their completed orders. Orders
// must have completed and been cancelled for each reason (stock,
// payment, timeout). WEIR_EXAMPLE_SEED replays a schedule.
func TestEveryOrderReachesOneTerminalStateAcrossWorkerAndBrokerKills(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WEIR_EXAMPLE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("WEIR_EXAMPLE_SEED: %v", err)
		}
	}
	t.Logf("schedule seed %d (WEIR_EXAMPLE_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	orders, killFor, timeout := 300, 16*time.Second, 100*time.Second
	if *longRun {
		orders, killFor, timeout = 4000, 3*time.Minute, 8*time.Minute
		// Ten times the items and customers, so that stock and balances
		// last about as far into the run as in the short one.
		items, customers = tenfold(items), tenfold(customers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	addr := exampletest.FreeAddr(t)
	broker := exampletest.NewService("broker", weirBin, "serve", "--listen", addr, "--data", t.TempDir(),
		"--set", "group.initial.rebalance.delay.ms=0")
	byService := map[string][]*exampletest.Service{}
	var workers []*exampletest.Service
	var orderHTTP []string // the order workers' interactive query addresses
	for _, svc := range saga.Services {
		for i := range 2 {
			id := svc + "-" + strconv.Itoa(i)
			args := []string{"--brokers", addr, "--service", svc, "--id", id,
				"--state", filepath.Join(t.TempDir(), id), "--order-timeout", orderTimeout.String(), "--tick", "300ms"}
			if svc == "order" {
				orderHTTP = append(orderHTTP, exampletest.FreeAddr(t))
				args = append(args, "--http", orderHTTP[len(orderHTTP)-1])
			}
			w := exampletest.NewService(id, workerBin, args...)
			byService[svc] = append(byService[svc], w)
			workers = append(workers, w)
		}
	}
	all := append([]*exampletest.Service{broker}, workers...)
	t.Cleanup(func() {
		for _, s := range all {
			s.Stop()
		}
		if t.Failed() {
			for _, s := range all {
				t.Logf("%s output:\n%s", s.Name, s.Log())
			}
		}
	})
	broker.Start(t)
	exampletest.WaitListening(t, addr)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(saga.OrdersTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, topic := range []string{saga.OrdersTopic, saga.InventoryTopic, saga.PaymentsTopic,
		saga.StatesTopic, saga.StockTopic, saga.BalancesTopic} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range workers {
		w.Start(t)
	}

	// The orders, placed idempotently while the kills happen.
	var produced sync.WaitGroup
	produced.Add(1)
	produceErr := make(chan error, 1)
	go func() {
		defer produced.Done()
		prng := rand.New(rand.NewPCG(seed, seed+1))
		pace := killFor / time.Duration(orders)
		for i := range orders {
			q := int64(1 + prng.IntN(3))
			m := saga.Message{Type: saga.OrderPlaced, Order: "o" + strconv.Itoa(i),
				Customer: customers[prng.IntN(len(customers))], Item: items[prng.IntN(len(items))],
				Quantity: q, Amount: q * int64(10+prng.IntN(31))}
			// Some orders cannot be served, whatever the stock and the
			// balances are by then: each failure path is taken even when
			// the kills time many orders out.
			switch prng.IntN(15) {
			case 0:
				m.Quantity = saga.InitialStock + 1
			case 1:
				m.Amount = saga.InitialBalance + 1
			}
			cl.Produce(ctx, &kgo.Record{Key: []byte(m.Order), Value: m.Encode()}, func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case produceErr <- err:
					default:
					}
				}
			})
			time.Sleep(pace)
		}
		if err := cl.Flush(ctx); err != nil {
			select {
			case produceErr <- err:
			default:
			}
		}
	}()

	// Kill a worker every so often, each once per round in a random
	// order; kill the broker once; take the inventory and then the
	// payment service wholly down once each.
	var brokerKilled, inventoryPaused, paymentPaused bool
	var round []int
	for start := time.Now(); time.Since(start) < killFor; {
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		switch elapsed := time.Since(start); {
		case !brokerKilled && elapsed > killFor/4:
			brokerKilled = true
			if broker.Kill() {
				time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
				broker.Start(t)
				exampletest.WaitListening(t, addr)
			}
			continue
		case !inventoryPaused && elapsed > killFor*4/10:
			inventoryPaused = true
			pause(t, byService["inventory"])
			continue
		case !paymentPaused && elapsed > killFor*6/10:
			paymentPaused = true
			pause(t, byService["payment"])
			continue
		}
		if len(round) == 0 {
			round = rng.Perm(len(workers))
		}
		s := workers[round[0]]
		round = round[1:]
		down := time.Duration(50+rng.IntN(300)) * time.Millisecond
		if *longRun && rng.IntN(6) == 0 {
			down = 12 * time.Second // past the session timeout: partitions move
		}
		if s.Kill() {
			time.Sleep(down)
			s.Start(t)
		}
	}
	// The pauses take time from the rounds: kill any worker that escaped.
	for _, w := range workers {
		for w.Kills() == 0 && ctx.Err() == nil {
			if w.Kill() {
				time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
				w.Start(t)
			} else {
				time.Sleep(100 * time.Millisecond) // between a failure and its restart
			}
		}
	}
	produced.Wait()
	select {
	case err := <-produceErr:
		t.Fatalf("placing orders: %v", err)
	default:
	}
	for _, s := range all {
		if s.Kills() == 0 {
			t.Fatalf("%s was never killed", s.Name)
		}
		t.Logf("%s: killed %d times, restarted %d times after failing on its own", s.Name, s.Kills(), s.Restarts())
	}

	placed := placedOrders(t, ctx, addr, orders)
	final := waitSettled(t, ctx, addr, placed)
	checkReplies(t, ctx, addr, final)
	checkLevels(t, ctx, addr, final)
	checkQueries(t, ctx, orderHTTP, final)
}

// checkQueries asks the order workers' interactive queries for every
// order: exactly one worker, the owner of its partition, answers, with
// the order's final state.
func checkQueries(t *testing.T, ctx context.Context, addrs []string, final map[string]saga.Order) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	for id, want := range final {
		for {
			var answers []saga.Order
			var last string
			for _, a := range addrs {
				resp, err := hc.Get("http://" + a + "/stores/orders/" + url.PathEscape("order/"+id))
				if err != nil {
					last = err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					last = fmt.Sprintf("%s: %d %s", a, resp.StatusCode, b)
					continue
				}
				var o saga.Order
				if err := json.Unmarshal(b, &o); err != nil {
					t.Fatalf("query of order %s: %q: %v", id, b, err)
				}
				answers = append(answers, o)
			}
			if len(answers) == 1 && answers[0] == want {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("interactive query of order %s: answers %+v (last refusal: %s), want one, %+v", id, answers, last, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func tenfold(names []string) []string {
	var out []string
	for _, n := range names {
		for i := range 10 {
			out = append(out, n+strconv.Itoa(i))
		}
	}
	return out
}

// pause takes a whole service down for pauseFor, so that the orders
// waiting for it time out, and starts it again.
func pause(t *testing.T, ws []*exampletest.Service) {
	t.Helper()
	var killed []*exampletest.Service
	for _, w := range ws {
		if w.Kill() {
			killed = append(killed, w)
		}
	}
	time.Sleep(pauseFor)
	for _, w := range killed {
		w.Start(t)
	}
}

// placedOrders reads the OrderPlaced messages of the orders topic and
// checks that each order was placed once.
func placedOrders(t *testing.T, ctx context.Context, addr string, n int) map[string]saga.Message {
	t.Helper()
	placed := map[string]saga.Message{}
	exampletest.ReadAll(t, ctx, addr, saga.OrdersTopic, func(r *kgo.Record) {
		m, err := saga.Decode(r.Value)
		if err != nil {
			t.Fatalf("orders topic: %v", err)
		}
		if m.Type != saga.OrderPlaced {
			return
		}
		if _, ok := placed[m.Order]; ok {
			t.Fatalf("order %s was placed twice", m.Order)
		}
		placed[m.Order] = m
	})
	if len(placed) != n {
		t.Fatalf("%d orders in the input, %d were placed", len(placed), n)
	}
	return placed
}

// waitSettled reads the order states read_committed until every placed
// order is settled, and checks each entered exactly one terminal state
// and never left it. It returns each order's last state.
func waitSettled(t *testing.T, ctx context.Context, addr string, placed map[string]saga.Message) map[string]saga.Order {
	t.Helper()
	for {
		last := map[string]saga.Order{}
		terminal := map[string][]string{} // terminal statuses each order entered, in order
		exampletest.ReadAll(t, ctx, addr, saga.StatesTopic, func(r *kgo.Record) {
			var sc saga.StateChange
			if err := json.Unmarshal(r.Value, &sc); err != nil {
				t.Fatalf("state %q: %v", r.Value, err)
			}
			o := sc.Order
			if prev, ok := last[o.ID]; ok && prev.Terminal() && o.Status != prev.Status {
				t.Fatalf("order %s left its terminal state %s for %s (cause %s)", o.ID, prev.Status, o.Status, sc.Cause)
			}
			if sc.Entered == saga.Completed || sc.Entered == saga.Cancelled {
				terminal[o.ID] = append(terminal[o.ID], sc.Entered)
			}
			last[o.ID] = o
		})
		var unsettled []string
		for id := range placed {
			if o, ok := last[id]; !ok || !o.Settled() {
				unsettled = append(unsettled, id)
			}
		}
		if len(unsettled) == 0 {
			counts := map[string]int{}
			for id, o := range last {
				if len(terminal[id]) != 1 {
					t.Errorf("order %s entered terminal states %v, want exactly one", id, terminal[id])
				}
				if _, ok := placed[id]; !ok {
					t.Errorf("order %s has a state but was never placed", id)
				}
				counts[o.Status+" "+o.Reason]++
			}
			t.Logf("outcomes: %v", counts)
			for _, want := range []string{saga.Completed + " ", saga.Cancelled + " " + saga.OutOfStock,
				saga.Cancelled + " " + saga.PaymentDenied, saga.Cancelled + " " + saga.TimedOut} {
				if counts[want] == 0 {
					t.Errorf("no order ended %q: the run did not exercise that path", want)
				}
			}
			return last
		}
		if ctx.Err() != nil {
			ex := unsettled[:min(len(unsettled), 5)]
			var states []string
			for _, id := range ex {
				b, _ := json.Marshal(last[id])
				states = append(states, string(b))
			}
			t.Fatalf("%d orders not settled in time, e.g. %v", len(unsettled), states)
		}
		time.Sleep(time.Second)
	}
}

// checkReplies counts, per order, the commands the order service sent
// and the replies the other services sent, read_committed: each step and
// each compensation happened at most once, and a compensation happened
// exactly when an order that did not complete had taken stock or been
// charged.
func checkReplies(t *testing.T, ctx context.Context, addr string, final map[string]saga.Order) {
	t.Helper()
	count := map[string]map[string]int{}
	for id := range final {
		count[id] = map[string]int{}
	}
	for _, topic := range []string{saga.OrdersTopic, saga.InventoryTopic, saga.PaymentsTopic} {
		exampletest.ReadAll(t, ctx, addr, topic, func(r *kgo.Record) {
			m, err := saga.Decode(r.Value)
			if err != nil {
				t.Fatalf("%s: %v", topic, err)
			}
			if m.Type == saga.Tick {
				return
			}
			if count[m.Order] == nil {
				t.Fatalf("%s: %s for order %q, which was never placed", topic, m.Type, m.Order)
			}
			count[m.Order][m.Type]++
		})
	}
	late := 0
	for id, o := range final {
		c := count[id]
		for _, typ := range []string{saga.ReserveStock, saga.ReleaseStock, saga.Charge, saga.Refund, saga.StockReleased, saga.Refunded} {
			if c[typ] > 1 {
				t.Errorf("order %s: %d %s, want at most one", id, c[typ], typ)
			}
		}
		if n := c[saga.StockReserved] + c[saga.StockRejected]; n != c[saga.ReserveStock] {
			t.Errorf("order %s: %d stock replies to %d reservations", id, n, c[saga.ReserveStock])
		}
		if n := c[saga.PaymentSucceeded] + c[saga.PaymentFailed]; n != c[saga.Charge] {
			t.Errorf("order %s: %d payment replies to %d charges", id, n, c[saga.Charge])
		}
		completed := o.Status == saga.Completed
		wantRelease, wantRefund := 0, 0
		if !completed && c[saga.StockReserved] == 1 {
			wantRelease = 1
		}
		if !completed && c[saga.PaymentSucceeded] == 1 {
			wantRefund = 1
		}
		if c[saga.ReleaseStock] != wantRelease || c[saga.StockReleased] != wantRelease {
			t.Errorf("order %s (%s %s): %d releases sent, %d applied, want %d", id, o.Status, o.Reason, c[saga.ReleaseStock], c[saga.StockReleased], wantRelease)
		}
		if c[saga.Refund] != wantRefund || c[saga.Refunded] != wantRefund {
			t.Errorf("order %s (%s %s): %d refunds sent, %d applied, want %d", id, o.Status, o.Reason, c[saga.Refund], c[saga.Refunded], wantRefund)
		}
		if completed && (c[saga.StockReserved] != 1 || c[saga.PaymentSucceeded] != 1) {
			t.Errorf("order %s completed without a reservation and a charge: %v", id, c)
		}
		if wantRefund == 1 || (o.Reason == saga.TimedOut && c[saga.StockReserved] == 1 && c[saga.Charge] == 0) {
			late++ // a success that came after the timeout, compensated
		}
	}
	t.Logf("orders whose stock or charge came after their timeout and was compensated: %d", late)
}

// checkLevels compares each item's stock and each customer's balance,
// the last value of each in the services' outputs, with what the
// completed orders took.
func checkLevels(t *testing.T, ctx context.Context, addr string, final map[string]saga.Order) {
	t.Helper()
	wantStock, wantBalance := map[string]int64{}, map[string]int64{}
	for _, i := range items {
		wantStock[i] = saga.InitialStock
	}
	for _, c := range customers {
		wantBalance[c] = saga.InitialBalance
	}
	for _, o := range final {
		if o.Status == saga.Completed {
			wantStock[o.Item] -= o.Quantity
			wantBalance[o.Customer] -= o.Amount
		}
	}
	for _, l := range []struct {
		topic   string
		initial int64
		want    map[string]int64
	}{{saga.StockTopic, saga.InitialStock, wantStock}, {saga.BalancesTopic, saga.InitialBalance, wantBalance}} {
		got := map[string]int64{}
		for k := range l.want {
			got[k] = l.initial // nothing written yet
		}
		exampletest.ReadAll(t, ctx, addr, l.topic, func(r *kgo.Record) {
			n, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", l.topic, r.Value, err)
			}
			if n < 0 {
				t.Errorf("%s: %s went negative: %d", l.topic, r.Key, n)
			}
			got[string(r.Key)] = n
		})
		for k, w := range l.want {
			if got[k] != w {
				t.Errorf("%s of %s: %d, want %d (initial − completed orders)", l.topic, k, got[k], w)
			}
		}
		t.Logf("%s at the end: %v", l.topic, got)
	}
}
