package orders_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/internal/exampletest"
	"github.com/weir-broker/weir/examples/orders/model"
	"github.com/weir-broker/weir/internal/testsvc"
)

var (
	pg                              *testsvc.Postgres
	weirBin, orderBin, inventoryBin string
)

func TestMain(m *testing.M) {
	os.Exit(exampletest.WithBinaries("orders", map[*string]string{&weirBin: testsvc.WeirPackage, &orderBin: "./orderservice", &inventoryBin: "./inventory"}, runWithPostgres(m)))
}

// runWithPostgres runs the tests with a PostgreSQL server of their own.
func runWithPostgres(m *testing.M) func() int {
	return func() int {
		var err error
		if pg, err = testsvc.StartPostgres(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pg.Stop()
		return m.Run()
	}
}

// TestEveryOrderAppliedOnceAcrossKills runs the whole story — the order
// service writing orders and outbox events, the relay publishing them in
// Kafka transactions, the inventory service applying them through the
// PostgreSQL dedup store, and the broker itself — and SIGKILLs each of
// them at random moments while orders flow. At the end every item's stock
// must equal its initial stock minus what its orders asked for, every
// order must have moved stock exactly once, and every order event must be
// in the topic exactly once. WEIR_EXAMPLE_SEED replays a kill schedule.
func TestEveryOrderAppliedOnceAcrossKills(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WEIR_EXAMPLE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("WEIR_EXAMPLE_SEED: %v", err)
		}
	}
	t.Logf("kill schedule seed %d (WEIR_EXAMPLE_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ordersDSN, err := pg.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inventoryDSN, err := pg.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addr := exampletest.FreeAddr(t)
	const totalOrders = 1000

	broker := exampletest.NewService("broker", weirBin, "serve", "--listen", addr, "--data", t.TempDir())
	orders := exampletest.NewService("orderservice", orderBin, "--dsn", ordersDSN, "--orders", strconv.Itoa(totalOrders), "--pace", "4ms")
	relay := exampletest.NewService("relay", weirBin, "outbox", "relay", "--dsn", ordersDSN, "--brokers", addr, "--relay-id", "orders-example")
	inventory := exampletest.NewService("inventory", inventoryBin, "--dsn", inventoryDSN, "--brokers", addr)
	all := []*exampletest.Service{broker, orders, relay, inventory}
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
	// Deploying the relay starts with its migration, as for any service.
	if out, err := exec.Command(weirBin, "outbox", "migrate", "--dsn", ordersDSN).CombinedOutput(); err != nil {
		t.Fatalf("weir outbox migrate: %v\n%s", err, out)
	}
	broker.Start(t)
	exampletest.WaitListening(t, addr)
	if out, err := exec.Command(weirBin, "topic", "create", model.Topic, "--partitions", "3", "--brokers", addr).CombinedOutput(); err != nil {
		t.Fatalf("weir topic create: %v\n%s", err, out)
	}
	for _, s := range all[1:] {
		s.Start(t)
	}

	// Three rounds in which each process is killed once, in a random
	// order, at random moments, and started again shortly after.
	for round := 0; round < 3; round++ {
		for _, i := range rng.Perm(len(all)) {
			time.Sleep(time.Duration(150+rng.IntN(450)) * time.Millisecond)
			s := all[i]
			if !s.Kill() {
				continue // the order service finished its orders
			}
			time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond)
			s.Start(t)
			if s == broker {
				exampletest.WaitListening(t, addr)
			}
		}
	}
	for _, s := range []*exampletest.Service{broker, relay, inventory} {
		if s.Kills() == 0 {
			t.Fatalf("%s was never killed", s.Name)
		}
	}
	for _, s := range all {
		t.Logf("%s: killed %d times, restarted %d times after failing on its own", s.Name, s.Kills(), s.Restarts())
	}

	if err := orders.WaitSuccess(time.Minute); err != nil {
		t.Fatal(err)
	}
	ordersDB := connect(t, ctx, ordersDSN)
	inventoryDB := connect(t, ctx, inventoryDSN)
	var placed int
	if err := ordersDB.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&placed); err != nil {
		t.Fatal(err)
	}
	if placed != totalOrders {
		t.Fatalf("order service placed %d orders, want %d", placed, totalOrders)
	}

	// Wait until the inventory has applied as many orders as exist.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		var moved, unsent int
		if err := inventoryDB.QueryRow(ctx, "SELECT count(DISTINCT order_id) FROM stock_moves").Scan(&moved); err != nil {
			t.Fatal(err)
		}
		if moved == placed {
			break
		}
		if time.Now().After(deadline) {
			if err := ordersDB.QueryRow(ctx, "SELECT count(*) FROM weir_outbox WHERE state <> 'sent'").Scan(&unsent); err != nil {
				t.Fatal(err)
			}
			t.Fatalf("inventory applied %d of %d orders in two minutes (%d outbox rows not sent)", moved, placed, unsent)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Nothing applied twice.
	var twice int
	if err := inventoryDB.QueryRow(ctx,
		"SELECT count(*) FROM (SELECT order_id FROM stock_moves GROUP BY order_id HAVING count(*) > 1) d").Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice != 0 {
		t.Fatalf("%d orders moved stock more than once", twice)
	}
	// The stock is what the orders imply.
	want := map[string]int64{}
	for _, item := range model.Items {
		want[item] = model.InitialStock
	}
	rows, err := ordersDB.Query(ctx, "SELECT item, sum(quantity) FROM orders GROUP BY item")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var item string
		var sum int64
		if err := rows.Scan(&item, &sum); err != nil {
			t.Fatal(err)
		}
		want[item] -= sum
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for item, w := range want {
		var got int64
		if err := inventoryDB.QueryRow(ctx, "SELECT quantity FROM stock WHERE item = $1", item).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("stock of %s: %d, want %d (initial %d less its orders)", item, got, w, model.InitialStock)
		}
	}
	// And the relay published every order event exactly once.
	// (Order ids have gaps: an order service killed inside its
	// transaction used up a sequence value.)
	perOrder := readOrderEvents(t, ctx, addr, placed)
	ids, err := ordersDB.Query(ctx, "SELECT id FROM orders")
	if err != nil {
		t.Fatal(err)
	}
	for ids.Next() {
		var id int64
		if err := ids.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if perOrder[id] != 1 {
			t.Errorf("order %d is in the topic %d times, want once", id, perOrder[id])
		}
	}
	if err := ids.Err(); err != nil {
		t.Fatal(err)
	}
	if len(perOrder) != placed {
		t.Errorf("the topic holds events of %d orders, the database %d", len(perOrder), placed)
	}
}

// readOrderEvents reads the order topic read_committed until it has seen
// at least want events (then to its end) and counts each order id.
func readOrderEvents(t *testing.T, ctx context.Context, addr string, want int) map[int64]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(model.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts := map[int64]int{}
	count := func(r *kgo.Record) {
		for _, h := range r.Headers {
			if h.Key == model.OrderIDHeader {
				id, _ := strconv.ParseInt(string(h.Value), 10, 64)
				counts[id]++
			}
		}
	}
	seen := 0
	for seen < want {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			t.Fatalf("reading %s after %d events: %v", model.Topic, seen, err)
		}
		fetches.EachRecord(func(r *kgo.Record) { seen++; count(r) })
	}
	// Anything beyond want would be a duplicate: read what is left.
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		n := 0
		fetches.EachRecord(func(r *kgo.Record) { n++; count(r) })
		if n == 0 {
			return counts
		}
	}
}

func connect(t *testing.T, ctx context.Context, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}
