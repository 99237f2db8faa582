package eos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/testsvc"
)

var repartitionLong = flag.Bool("eos.repartition.long", false, "run the repartition kill test for minutes, with more orders")

// The repartition worker: orders keyed by order id, re-keyed by customer,
// summed per customer (amount and order count).
const (
	ordersTopic = "orders"
	sumsTopic   = "customer-sums"
	sumsApp     = "sums"
)

// order is "customer,amount".
func orderCustomer(in *kgo.Record) ([]byte, error) {
	c, _, ok := strings.Cut(string(in.Value), ",")
	if !ok {
		return nil, fmt.Errorf("order %q: want customer,amount", in.Value)
	}
	return []byte(c), nil
}

// sumPerCustomer keeps "<customer>/sum" and "<customer>/n" and emits
// "sum n" keyed by customer. A pause per record lets kills land inside
// transactions.
func sumPerCustomer(_ context.Context, in *kgo.Record, s Store) ([]*kgo.Record, error) {
	time.Sleep(time.Millisecond)
	_, a, _ := strings.Cut(string(in.Value), ",")
	amount, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return nil, err
	}
	sum, err := AddInt64(s, append(append([]byte{}, in.Key...), "/sum"...), amount)
	if err != nil {
		return nil, err
	}
	n, err := AddInt64(s, append(append([]byte{}, in.Key...), "/n"...), 1)
	if err != nil {
		return nil, err
	}
	return []*kgo.Record{{Key: in.Key, Value: []byte(fmt.Sprintf("%d %d", sum, n))}}, nil
}

func repartitionConfig(broker, id, dir string) (Config, Repartition) {
	return Config{Brokers: []string{broker}, TransactionalID: id, Group: sumsApp,
			InputTopics: []string{ordersTopic}, OutputTopic: sumsTopic, MaxPerTxn: 20,
			Store: "totals", StateDir: dir,
			ClientOpts: []kgo.Opt{kgo.InstanceID(id)}},
		Repartition{Name: "by-customer", Key: orderCustomer, PurgeInterval: 500 * time.Millisecond}
}

// runRepartitionWorker runs the topology until killed or SIGTERM.
func runRepartitionWorker() int {
	cfg, rp := repartitionConfig(os.Getenv("BROKER"), os.Getenv("WORKER_ID"), os.Getenv("STATE_DIR"))
	topo, err := NewRepartitioned(cfg, rp, sumPerCustomer)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer topo.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := topo.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childProc is one worker process of the test binary, killed and started
// again by the test.
type childProc struct {
	env  []string
	out  syncBuffer
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (c *childProc) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = &c.out, &c.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()
}

func (c *childProc) kill() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Orders keyed by order id are re-keyed by customer through the
// repartition topic and summed per customer by two worker processes,
// each SIGKILLed at random moments and restarted, against a `weir serve`
// process. Every customer's final sum and order count, read_committed
// from the output, equal those computed from the input: a kill between
// the re-keyed write and its commit, or between the aggregate and its
// commit, neither loses an order nor counts one twice. The committed
// repartition records are purged (DeleteRecords).
// WEIR_EOS_SEED replays a kill schedule.
func TestRepartitionedSumsAreExactAcrossWorkerSIGKILLs(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WEIR_EOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("kill schedule seed %d (WEIR_EOS_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	orders, killFor, timeout := 2000, 10*time.Second, 90*time.Second
	if *repartitionLong {
		orders, killFor, timeout = 20000, 3*time.Minute, 8*time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	dir := t.TempDir()
	bin, err := testsvc.Build(dir, testsvc.WeirPackage)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := testsvc.StartCluster(bin, dir, 1, "--set", "group.initial.rebalance.delay.ms=0")
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Stop()
	addr := cluster.Nodes[0].Addr
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(ordersTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := &rig{t: t, ctx: ctx, addr: addr, cl: cl, adm: kadm.NewClient(cl)}
	for _, topic := range []string{ordersTopic, sumsTopic} {
		if _, err := r.adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}

	workers := make([]*childProc, 2)
	for i := range workers {
		id := "sums-" + strconv.Itoa(i)
		workers[i] = &childProc{env: []string{workerEnv + "=1", "WORKER_KIND=repartition", "BROKER=" + addr,
			"WORKER_ID=" + id, "STATE_DIR=" + t.TempDir()}}
		workers[i].start(t)
	}
	defer func() {
		for i, w := range workers {
			w.kill()
			if t.Failed() {
				t.Logf("worker %d output:\n%s", i, w.out.String())
			}
		}
	}()

	// Orders, produced idempotently while the workers are killed.
	produceErr := make(chan error, 1)
	var produced sync.WaitGroup
	produced.Add(1)
	go func() {
		defer produced.Done()
		prng := rand.New(rand.NewPCG(seed, seed+1))
		pace := killFor / time.Duration(orders)
		for i := range orders {
			v := fmt.Sprintf("c%d,%d", prng.IntN(17), 1+prng.IntN(100))
			cl.Produce(ctx, &kgo.Record{Key: []byte("order-" + strconv.Itoa(i)), Value: []byte(v)}, func(_ *kgo.Record, err error) {
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

	kills := make([]int, len(workers))
	var round []int
	for start := time.Now(); time.Since(start) < killFor; {
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		if len(round) == 0 {
			round = rng.Perm(len(workers))
		}
		i := round[0]
		round = round[1:]
		workers[i].kill()
		kills[i]++
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
		workers[i].start(t)
	}
	produced.Wait()
	select {
	case err := <-produceErr:
		t.Fatalf("producing orders: %v", err)
	default:
	}
	t.Logf("kills per worker: %v", kills)

	// What the input holds decides the expected sums.
	want := map[string][2]int64{}
	readCommitted(r, ordersTopic, func(rec *kgo.Record) {
		c, a, _ := strings.Cut(string(rec.Value), ",")
		n, _ := strconv.ParseInt(a, 10, 64)
		w := want[c]
		want[c] = [2]int64{w[0] + n, w[1] + 1}
	})
	var total int64
	for _, w := range want {
		total += w[1]
	}
	if total != int64(orders) {
		t.Fatalf("the input holds %d orders, %d were produced", total, orders)
	}

	// Wait until the output accounts for every order; more than that is
	// an order counted twice.
	var got map[string][2]int64
	for {
		got = map[string][2]int64{}
		var n int64
		out, _ := r.readLog(sumsTopic, kgo.ReadCommitted())
		for c, v := range out {
			var s, k int64
			if _, err := fmt.Sscanf(v, "%d %d", &s, &k); err != nil {
				t.Fatalf("output %q of %s: %v", v, c, err)
			}
			got[c] = [2]int64{s, k}
			n += k
		}
		if n > total {
			t.Fatalf("the output counts %d orders, the input holds %d: orders counted twice", n, total)
		}
		if n == total {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the output counts %d of %d orders before the deadline: orders lost", n, total)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("customer %s: sum %d over %d orders, want %d over %d", c, got[c][0], got[c][1], w[0], w[1])
		}
	}

	// Committed repartition records are purged.
	repart := RepartitionTopic(sumsApp, "by-customer")
	for {
		starts, err := r.adm.ListStartOffsets(ctx, repart)
		var purged int64
		if err == nil {
			starts.Each(func(o kadm.ListedOffset) { purged += o.Offset })
		}
		if purged > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no committed record of %s was purged (last error %v)", repart, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readCommitted calls fn on every data record of topic, read_committed,
// up to the end offsets as they are now.
func readCommitted(r *rig, topic string, fn func(*kgo.Record)) {
	r.t.Helper()
	ends, err := r.adm.ListEndOffsets(r.ctx, topic)
	if err != nil {
		r.t.Fatal(err)
	}
	parts, remaining := map[int32]kgo.Offset{}, map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			parts[o.Partition], remaining[o.Partition] = kgo.NewOffset().AtStart(), o.Offset
		}
	})
	if len(parts) == 0 {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.addr), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		r.t.Fatal(err)
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fs := cl.PollFetches(r.ctx)
		if err := fs.Err(); err != nil && !errors.Is(err, context.Canceled) {
			r.t.Fatalf("reading %s: %v", topic, err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			end, ok := remaining[rec.Partition]
			if !ok {
				return
			}
			if rec.Offset+1 >= end {
				delete(remaining, rec.Partition)
			}
			if !rec.Attrs.IsControl() {
				fn(rec)
			}
		})
	}
}
