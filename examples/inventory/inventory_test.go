package inventory_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/internal/exampletest"
	"github.com/weir-broker/weir/examples/inventory"
	"github.com/weir-broker/weir/internal/testsvc"
)

var longRun = flag.Bool("inventory.long", false, "run the kill test for minutes with more events, workers killed more often")

var weirBin, workerBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(exampletest.WithBinaries("inventory", map[*string]string{&weirBin: testsvc.WeirPackage, &workerBin: "./worker"}, m.Run))
}

var items = []string{"apple", "bolt", "cable", "drill", "easel", "funnel", "glove", "hammer", "ink", "jack", "kettle", "ladder"}

// TestStockIsExactAcrossWorkerAndBrokerKills runs the inventory
// aggregator as three worker processes (the third joining late, which
// moves partitions) while order and restock events flow, SIGKILLs the workers at random moments (restarting each shortly
// after) and the broker once. Every item's final stock, read_committed
// from the output topic and from the workers' interactive queries, must
// be its initial stock plus its restocks minus its orders: no event lost,
// none applied twice. WEIR_EXAMPLE_SEED replays a schedule.
func TestStockIsExactAcrossWorkerAndBrokerKills(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WEIR_EXAMPLE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("WEIR_EXAMPLE_SEED: %v", err)
		}
	}
	t.Logf("schedule seed %d (WEIR_EXAMPLE_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	events, killFor, timeout := 2000, 12*time.Second, 100*time.Second
	if *longRun {
		events, killFor, timeout = 20000, 3*time.Minute, 8*time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	addr := exampletest.FreeAddr(t)
	broker := exampletest.NewService("broker", weirBin, "serve", "--listen", addr, "--data", t.TempDir(),
		"--set", "group.initial.rebalance.delay.ms=0")
	workers := make([]*exampletest.Service, 3)
	httpAddrs := make([]string, len(workers))
	for i := range workers {
		id := "worker-" + strconv.Itoa(i)
		httpAddrs[i] = exampletest.FreeAddr(t)
		workers[i] = exampletest.NewService(id, workerBin, "--brokers", addr, "--id", id,
			"--state", filepath.Join(t.TempDir(), id), "--http", httpAddrs[i])
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(inventory.EventsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, topic := range []string{inventory.EventsTopic, inventory.StockTopic} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	// Two workers first; the third joins once events flow, so partitions
	// move between workers (a rebalance, stores restored on assignment).
	workers[0].Start(t)
	workers[1].Start(t)

	// The events, produced idempotently while the kills happen; what the
	// input topic holds at the end decides the expected stock.
	var produced sync.WaitGroup
	produced.Add(1)
	produceErr := make(chan error, 1)
	go func() {
		defer produced.Done()
		prng := rand.New(rand.NewPCG(seed, seed+1))
		pace := killFor / time.Duration(events)
		for i := range events {
			kind, q := inventory.Order, int64(1+prng.IntN(5))
			if prng.IntN(4) == 0 {
				kind, q = inventory.Restock, int64(5+prng.IntN(20))
			}
			r := &kgo.Record{Key: []byte(items[prng.IntN(len(items))]), Value: inventory.Event(kind, q),
				Headers: []kgo.RecordHeader{{Key: exampletest.EventIDHeader, Value: []byte(strconv.Itoa(i))}}}
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
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

	// Kill a worker every so often; kill the broker once, a third of the
	// way in.
	brokerKilled := false
	time.Sleep(time.Second)
	workers[2].Start(t)
	// Workers are killed in rounds, each once per round in a random
	// order, so none escapes.
	var round []int
	for start := time.Now(); time.Since(start) < killFor; {
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		if len(round) == 0 {
			round = rng.Perm(len(workers))
		}
		s := workers[round[0]]
		round = round[1:]
		down := time.Duration(50+rng.IntN(300)) * time.Millisecond
		if *longRun && rng.IntN(6) == 0 {
			// Longer than the session timeout: the group gives the
			// worker's partitions to the others, and back later.
			down = 12 * time.Second
		}
		if !brokerKilled && time.Since(start) > killFor/3 {
			s, brokerKilled = broker, true
		}
		if !s.Kill() {
			continue // between a failure and its restart
		}
		if s == broker {
			down = time.Duration(50+rng.IntN(300)) * time.Millisecond
		}
		time.Sleep(down)
		s.Start(t)
		if s == broker {
			exampletest.WaitListening(t, addr)
		}
	}
	produced.Wait()
	select {
	case err := <-produceErr:
		t.Fatalf("producing events: %v", err)
	default:
	}
	for _, s := range all {
		if s.Kills() == 0 {
			t.Fatalf("%s was never killed", s.Name)
		}
		t.Logf("%s: killed %d times, restarted %d times after failing on its own", s.Name, s.Kills(), s.Restarts())
	}

	want := expectedStock(t, ctx, addr, events)
	// Wait until the group has committed every input.
	for {
		ends, err := adm.ListEndOffsets(ctx, inventory.EventsTopic)
		if err == nil {
			var offs kadm.OffsetResponses
			if offs, err = adm.FetchOffsets(ctx, inventory.Group); err == nil {
				done := true
				ends.Each(func(e kadm.ListedOffset) {
					o, ok := offs.Lookup(e.Topic, e.Partition)
					done = done && ok && o.At >= e.Offset
				})
				if done {
					break
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the workers did not commit every input in time (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	got := finalStock(t, ctx, addr)
	for _, item := range items {
		if got[item] != want[item] {
			t.Errorf("stock of %s in %s: %d, want %d (initial %d + restocks − orders)", item, inventory.StockTopic, got[item], want[item], int64(inventory.InitialStock))
		}
	}
	// The interactive query: the worker that owns an item's partition
	// answers with the same stock; no worker answers another.
	hosts := map[string]int{}
	for _, item := range items {
		for {
			answers, last := queryAll(httpAddrs, item)
			ok := len(answers) > 0
			for _, a := range answers {
				ok = ok && a == strconv.FormatInt(want[item], 10)
			}
			if ok {
				for a := range answers {
					hosts[a]++
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("interactive query of %s: answers %v (last: %s), want %d", item, answers, last, want[item])
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("items answered by each worker's query: %v", hosts)
}

// expectedStock reads every event read_committed, checks each was written
// once, and applies them to the initial stock.
func expectedStock(t *testing.T, ctx context.Context, addr string, events int) map[string]int64 {
	t.Helper()
	want := map[string]int64{}
	for _, item := range items {
		want[item] = inventory.InitialStock
	}
	seen := map[string]bool{}
	exampletest.ReadAll(t, ctx, addr, inventory.EventsTopic, func(r *kgo.Record) {
		var id string
		for _, h := range r.Headers {
			if h.Key == exampletest.EventIDHeader {
				id = string(h.Value)
			}
		}
		if seen[id] {
			t.Fatalf("event %s is in the input twice", id)
		}
		seen[id] = true
		d, err := inventory.Delta(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		want[string(r.Key)] += d
	})
	if len(seen) != events {
		t.Fatalf("the input holds %d events, %d were produced", len(seen), events)
	}
	return want
}

// finalStock reads the output read_committed: the last stock per item.
func finalStock(t *testing.T, ctx context.Context, addr string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	exampletest.ReadAll(t, ctx, addr, inventory.StockTopic, func(r *kgo.Record) {
		n, err := strconv.ParseInt(string(r.Value), 10, 64)
		if err != nil {
			t.Fatalf("output %q: %v", r.Value, err)
		}
		got[string(r.Key)] = n
	})
	return got
}

// queryAll asks every worker for item's stock and returns the answers of
// those that hold it, by worker address, and the last refusal or error.
func queryAll(addrs []string, item string) (answers map[string]string, last string) {
	hc := &http.Client{Timeout: 2 * time.Second}
	answers = map[string]string{}
	for _, a := range addrs {
		resp, err := hc.Get("http://" + a + "/stores/" + inventory.StoreName + "/" + item)
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			answers[a] = string(b)
		} else {
			last = fmt.Sprintf("%s: %d %s", a, resp.StatusCode, b)
		}
	}
	return answers, last
}
