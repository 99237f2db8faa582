package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/saga"
)

// The saga row's orders: placed over sagaPlaceFor across a few items and
// customers, one in fifteen asking for more stock than an item has and
// one in fifteen for more than a balance holds, so that both failure
// paths (and their compensations) are taken whatever the kills do.
const sagaPlaceFor = 6 * time.Second

var (
	sagaItems     = []string{"apple", "bolt", "cable", "drill", "easel", "funnel", "glove", "hammer"}
	sagaCustomers = []string{"ada", "bo", "cy", "dee", "eli", "fay", "gus", "hal", "ivy", "jo"}
)

// sagaOrders is how many orders the row places: a tenth of the
// consumer records, at least 60.
func sagaOrders(c *Config) int { return max(60, c.ConsumerRecords/10) }

// sagaKills draws the saga row's schedule: for the order, inventory and
// payment workers in turn, the produce batch after which each one's first
// generation SIGKILLs itself (a transaction open), then the millisecond
// after the first order at which the broker is SIGKILLed and restarted.
func sagaKills(_ *Config, rng *rand.Rand) []int {
	return []int{2 + rng.Intn(15), 2 + rng.Intn(15), 2 + rng.Intn(15), 1000 + rng.Intn(4000)}
}

// runSaga runs examples/saga's three services, one `weir lab worker` each,
// places orders while each worker kills itself mid-transaction (and is
// killed from outside if its kill point never came) and is restarted and
// the broker is SIGKILLed and restarted once, waits for every order to
// settle, and reads the saga's topics back read_committed for CheckSaga.
func runSaga(ctx context.Context, e *env) (*measure, error) {
	bk, b, err := e.cluster(ctx, "")
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: the saga row kills the broker", errNotRun)
	}
	defer b.stop()
	for _, t := range []string{saga.OrdersTopic, saga.InventoryTopic, saga.PaymentsTopic,
		saga.StatesTopic, saga.StockTopic, saga.BalancesTopic} {
		if err := createTopic(ctx, bk, t, e.cfg.Partitions); err != nil {
			return nil, err
		}
	}
	if len(e.kills) < 4 {
		return nil, errors.New("saga row: no kill schedule")
	}
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	var sups []*sagaSupervisor
	for i, role := range sagaRoles {
		sc, err := sagaService(role)
		if err != nil {
			return nil, err
		}
		s := &sagaSupervisor{role: role, killAt: e.kills[i], done: make(chan struct{}), w: WorkerConfig{
			Brokers: bk.addrs, Role: role, Topic: sc.Input, Group: sc.Group,
			Instance: "lab-" + role, Effects: e.workDir + "/" + role}}
		if role == workerSagaPayment {
			// Down past the order timeout: orders awaiting payment
			// time out, and the charges answered late are refunded.
			s.firstDown = sagaOrderTimeout + time.Second
		}
		sups = append(sups, s)
		go s.run(wctx, e)
	}
	stopAll := func() {
		for _, s := range sups {
			s.stop()
		}
	}
	defer stopAll()

	start := time.Now()
	placed, acked, brokerNote, err := placeOrders(ctx, e, bk, b, sagaOrders(e.cfg), time.Duration(e.kills[3])*time.Millisecond)
	if err != nil {
		return nil, err
	}
	// A worker whose kill point did not come (too few batches) is killed
	// now, from outside: every service dies at least once.
	for _, s := range sups {
		if err := s.ensureKilled(ctx); err != nil {
			return nil, err
		}
	}
	settled := waitOrdersSettled(ctx, bk, placed)
	elapsed := time.Since(start)
	stopAll()
	for _, s := range sups {
		if s.err != nil {
			return nil, s.err
		}
	}
	h, err := readSaga(ctx, bk, placed, acked)
	if err != nil {
		return nil, err
	}
	r := CheckSaga(h)
	var workers []string
	failures := 0
	for _, s := range sups {
		workers = append(workers, fmt.Sprintf("%s %d× (%d by itself mid-transaction)", strings.TrimPrefix(s.role, "saga-"), s.kills, s.selfKills))
		failures += s.failures
	}
	notes := []string{
		"workers SIGKILLed and restarted: " + strings.Join(workers, ", ") + fmt.Sprintf("; failed on their own and restarted %d×", failures),
		brokerNote,
		fmt.Sprintf("orders: %d placed, %d completed, cancelled %s; compensations applied: %d stock releases, %d refunds", len(h.Placed), r.Completed, cancelReasons(h), r.Releases, r.Refunds),
	}
	if !settled {
		notes = append(notes, "not every order settled in time")
	}
	return &measure{history: History{Sent: len(h.Placed), Saga: h},
		throughput: float64(len(h.Placed)) / elapsed.Seconds(), notes: notes}, nil
}

// placeOrders places n orders over sagaPlaceFor with an idempotent
// producer, SIGKILLing the broker brokerAt after the first and
// restarting it. It returns the orders acknowledged and their count.
func placeOrders(ctx context.Context, e *env, bk brokers, b *brokerProc, n int, brokerAt time.Duration) (map[string]saga.Message, int, string, error) {
	cl, err := bk.client(append(clientTimeouts(), kgo.DefaultProduceTopic(saga.OrdersTopic))...)
	if err != nil {
		return nil, 0, "", err
	}
	defer cl.Close()
	rng := rand.New(rand.NewSource(e.faultSeed))
	var (
		mu     sync.Mutex
		placed = map[string]saga.Message{}
		acked  int
		bad    error
	)
	brokerNote := "broker not killed"
	pace := sagaPlaceFor / time.Duration(n)
	start := time.Now()
	for i := range n {
		if brokerNote == "broker not killed" && time.Since(start) >= brokerAt {
			b.kill()
			time.Sleep(200 * time.Millisecond)
			if err := b.restart(ctx); err != nil {
				return nil, 0, "", fmt.Errorf("restarting the broker: %w", err)
			}
			brokerNote = fmt.Sprintf("broker SIGKILLed %d ms after the first order and restarted", time.Since(start).Milliseconds())
		}
		q := int64(1 + rng.Intn(3))
		m := saga.Message{Type: saga.OrderPlaced, Order: "o" + strconv.Itoa(i),
			Customer: sagaCustomers[rng.Intn(len(sagaCustomers))], Item: sagaItems[rng.Intn(len(sagaItems))],
			Quantity: q, Amount: q * int64(10+rng.Intn(31))}
		switch rng.Intn(15) {
		case 0:
			m.Quantity = saga.InitialStock + 1
		case 1:
			m.Amount = saga.InitialBalance + 1
		}
		cl.Produce(ctx, &kgo.Record{Key: []byte(m.Order), Value: m.Encode()}, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				bad = err
				return
			}
			placed[m.Order] = m
			acked++
		})
		time.Sleep(pace)
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, 0, "", fmt.Errorf("placing orders: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if bad != nil {
		return nil, 0, "", fmt.Errorf("placing orders: %w", bad)
	}
	return placed, acked, brokerNote, nil
}

// sagaSettleWait bounds the wait for every order to settle; the rest of
// the scenario's time is left to read the topics back.
const sagaSettleWait = 40 * time.Second

// waitOrdersSettled reads the order states read_committed until every
// placed order is settled (saga.Order.Settled), and reports whether all
// did in time; the checker counts those that did not.
func waitOrdersSettled(ctx context.Context, bk brokers, placed map[string]saga.Message) bool {
	deadline := time.Now().Add(sagaSettleWait)
	if d, ok := ctx.Deadline(); ok && d.Add(-readBackTimeout/2).Before(deadline) {
		deadline = d.Add(-readBackTimeout / 2)
	}
	for time.Now().Before(deadline) {
		if recs, err := readCommittedNow(ctx, bk, saga.StatesTopic); err == nil {
			last := map[string]saga.Order{}
			for _, r := range recs {
				var sc saga.StateChange
				if json.Unmarshal(r.Value, &sc) == nil {
					last[sc.Order.ID] = sc.Order
				}
			}
			all := true
			for id := range placed {
				if o, ok := last[id]; !ok || !o.Settled() {
					all = false
					break
				}
			}
			if all {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
	return false
}

// readCommittedNow reads topic read_committed up to its last stable
// offsets as they are now, without control records.
func readCommittedNow(ctx context.Context, bk brokers, topic string) ([]*kgo.Record, error) {
	cl, err := bk.client(clientTimeouts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	lso, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = lso.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("last stable offsets of %s: %w", topic, err)
	}
	rctx, cancel := context.WithTimeout(ctx, readBackTimeout)
	defer cancel()
	recs, err := readUpTo(rctx, bk, topic, offsetsByPartition(lso), kgo.ReadCommitted())
	return dataRecords(recs), err
}

// readSaga reads the saga's topics back read_committed, once their
// transactions have ended, into a SagaHistory.
func readSaga(ctx context.Context, bk brokers, placed map[string]saga.Message, acked int) (*SagaHistory, error) {
	cl, err := bk.client(clientTimeouts()...)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	for _, t := range []string{saga.OrdersTopic, saga.InventoryTopic, saga.PaymentsTopic, saga.StatesTopic, saga.StockTopic, saga.BalancesTopic} {
		if _, _, err := stableOffsets(ctx, adm, t); err != nil {
			cl.Close()
			return nil, err
		}
	}
	cl.Close()
	h := &SagaHistory{Placed: map[string]saga.Message{}, Acked: acked, Stock: map[string]int64{}, Balances: map[string]int64{}}
	for id, m := range placed {
		h.Placed[id] = m
	}
	for _, t := range []string{saga.OrdersTopic, saga.InventoryTopic, saga.PaymentsTopic} {
		recs, err := readCommittedNow(ctx, bk, t)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			m, err := saga.Decode(r.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t, err)
			}
			switch m.Type {
			case saga.Tick:
			case saga.OrderPlaced:
				h.Placed[m.Order] = m
			default:
				h.Messages = append(h.Messages, m)
			}
		}
	}
	recs, err := readCommittedNow(ctx, bk, saga.StatesTopic)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		var sc saga.StateChange
		if err := json.Unmarshal(r.Value, &sc); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", saga.StatesTopic, r.Value, err)
		}
		h.States = append(h.States, sc)
	}
	for t, levels := range map[string]map[string]int64{saga.StockTopic: h.Stock, saga.BalancesTopic: h.Balances} {
		recs, err := readCommittedNow(ctx, bk, t)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			n, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", t, r.Value, err)
			}
			levels[string(r.Key)] = n
		}
	}
	return h, nil
}

// cancelReasons counts the cancelled orders by reason, from their last
// state.
func cancelReasons(h *SagaHistory) string {
	last := map[string]saga.Order{}
	for _, sc := range h.States {
		last[sc.Order.ID] = sc.Order
	}
	by := map[string]int{}
	for _, o := range last {
		if o.Status == saga.Cancelled {
			by[o.Reason]++
		}
	}
	var parts []string
	for r, n := range by {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// sagaSupervisor keeps one saga service's worker running: it restarts
// the worker whenever it dies (SIGKILLed, or failed on its own while the
// broker was down) until stop.
type sagaSupervisor struct {
	role   string
	w      WorkerConfig
	killAt int // the first generation's kill point, in produce batches
	// firstDown is how long the worker stays down after its first kill.
	firstDown time.Duration

	mu                         sync.Mutex
	cur                        *worker
	killedOutside              *worker // the worker ensureKilled signalled
	stopping                   bool
	kills, selfKills, failures int
	err                        error // set before done closes
	done                       chan struct{}
}

// sagaMaxFailures bounds how often a worker may fail on its own before
// the row gives up.
const sagaMaxFailures = 30

func (s *sagaSupervisor) run(ctx context.Context, e *env) {
	defer close(s.done)
	for gen := 0; ; gen++ {
		w := s.w
		if gen == 0 {
			w.KillAfter = s.killAt
		}
		wk, err := startWorker(e, w)
		if err != nil {
			s.err = err
			return
		}
		s.mu.Lock()
		s.cur = wk
		stopping := s.stopping
		s.mu.Unlock()
		if stopping {
			wk.cmd.Process.Signal(syscall.SIGTERM)
		}
		killed, err := wk.wait(ctx)
		s.mu.Lock()
		s.cur = nil
		stopping = s.stopping
		switch {
		case stopping || ctx.Err() != nil:
		case killed:
			s.kills++
			if w.KillAfter > 0 && s.killedOutside != wk {
				s.selfKills++
			}
		default:
			s.failures++
		}
		failures := s.failures
		s.mu.Unlock()
		if stopping || ctx.Err() != nil {
			return
		}
		if failures > sagaMaxFailures {
			s.err = fmt.Errorf("%s worker failed %d times: %v", s.role, failures, err)
			return
		}
		down := 200 * time.Millisecond // down for a moment, as after a crash
		if killed && s.kills == 1 && s.firstDown > 0 {
			down = s.firstDown
		}
		time.Sleep(down)
	}
}

// ensureKilled SIGKILLs the running worker if none has been killed yet.
func (s *sagaSupervisor) ensureKilled(ctx context.Context) error {
	for {
		s.mu.Lock()
		kills, cur := s.kills, s.cur
		s.mu.Unlock()
		if kills > 0 {
			return nil
		}
		if cur != nil {
			s.mu.Lock()
			s.killedOutside = cur
			s.mu.Unlock()
			cur.cmd.Process.Signal(syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return s.err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the worker with SIGTERM and waits for the supervisor.
func (s *sagaSupervisor) stop() {
	s.mu.Lock()
	s.stopping = true
	if s.cur != nil {
		s.cur.cmd.Process.Signal(syscall.SIGTERM)
	}
	s.mu.Unlock()
	<-s.done
}
