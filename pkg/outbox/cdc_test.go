package outbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cdcChildEnv makes TestCDCRelayProcess run a change-data-capture relay
// configured from the environment (see startCDCChild).
const cdcChildEnv = "WEIR_OUTBOX_CDC_CHILD"

// newCDCEnv is newEnv with a one-partition events topic, so that the
// topic's order is the order of publication.
func newCDCEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.topic, e.parts = "orders-cdc", 1
	resp, err := kadm.NewClient(e.client()).CreateTopic(testCtx(t), 1, 1, nil, e.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// cdcSetup creates the publication and relayID's slot, as the relay's
// first start does: events committed from here on are the relay's.
func (e *env) cdcSetup(relayID string) {
	e.t.Helper()
	e.cdcSetupWith(e.config(relayID, 0))
}

// cdcSetupWith is cdcSetup for a relay configured by cfg.
func (e *env) cdcSetupWith(cfg RelayConfig) {
	e.t.Helper()
	ctx := testCtx(e.t)
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	conn, err := r.connect(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := r.setup(ctx, conn); err != nil {
		e.t.Fatal(err)
	}
	// Slots are few in a server: drop this one when the test is over
	// (after its relays stopped; a killed relay's connection may take a
	// moment to go).
	e.t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, _, err := r.DropSlot(context.Background())
			if !slotInUse(err) || time.Now().After(deadline) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// startCDC runs a change-data-capture relay in this process.
func (e *env) startCDC(relayID string) (*CDCRelay, func() error) {
	e.t.Helper()
	return e.startCDCWith(e.config(relayID, 0))
}

// startCDCWith runs a change-data-capture relay configured by cfg in
// this process.
func (e *env) startCDCWith(cfg RelayConfig) (*CDCRelay, func() error) {
	e.t.Helper()
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			cancel()
			runErr, stopped = <-done, true
		}
		return runErr
	}
	e.t.Cleanup(func() { stop() })
	return r, stop
}

// waitPublished polls the read_committed view of the topic until it holds
// every one of ids, then checks that it holds each exactly once. The relay
// publishes source transactions in commit order, so once the last is in,
// nothing of these events is still to come.
func (e *env) waitPublished(ids []int64) []published {
	e.t.Helper()
	ctx := testCtx(e.t)
	for {
		seen := idsOf(e.readTopic(kgo.ReadCommitted()))
		all := true
		for _, id := range ids {
			all = all && seen[id] > 0
		}
		if all {
			return e.assertExactlyOnce(ids)
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("events not all published: have %d of %d", len(seen), len(ids))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// placeOrdersInTxns writes n events in transactions of per events each.
func (e *env) placeOrdersInTxns(n, per int) []int64 {
	e.t.Helper()
	ctx := testCtx(e.t)
	var ids []int64
	for len(ids) < n {
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			for i := 0; i < per && len(ids) < n; i++ {
				id, err := Write(ctx, tx, Event{Topic: e.topic, Key: []byte(fmt.Sprintf("c%d", len(ids)%7)),
					Payload: []byte(strconv.Itoa(len(ids))), Headers: map[string]string{"type": "order-placed"}})
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return nil
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return ids
}

// TestCDCPublishesEachEventOnceInCommitOrder writes events in several
// transactions, one of which commits after a later-started one, and checks
// that each event is published once, with its id header and headers, in
// the order of the commits, and that a restarted relay publishes only what
// came after.
func TestCDCPublishesEachEventOnceInCommitOrder(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("c1")
	first := e.placeOrdersInTxns(6, 3)

	// Two transactions that commit in the reverse order of their ids.
	early, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Rollback(ctx)
	earlyID, err := Write(ctx, early, Event{Topic: e.topic, Payload: []byte("early")})
	if err != nil {
		t.Fatal(err)
	}
	late := e.placeOrdersInTxns(1, 1)
	if err := early.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]int64{}, first...), late...), earlyID)

	r, stop := e.startCDC("c1")
	got := e.waitPublished(want)
	var order []int64
	for _, p := range got {
		order = append(order, p.id)
		if p.headers[EventIDHeader] != strconv.FormatInt(p.id, 10) {
			t.Errorf("event %d: id header %q", p.id, p.headers[EventIDHeader])
		}
	}
	if !slices.Equal(order, want) {
		t.Fatalf("published order %v, want commit order %v", order, want)
	}
	if got[0].headers["type"] != "order-placed" || got[len(got)-1].payload != "early" {
		t.Errorf("event contents not carried over: first %+v, last %+v", got[0], got[len(got)-1])
	}
	if s := r.Stats(); s.Events != int64(len(want)) || s.Batches != 4 {
		t.Errorf("stats %+v, want %d events in 4 transactions", s, len(want))
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}

	// A restart resumes after what is published.
	more := e.placeOrdersInTxns(4, 2)
	r2, _ := e.startCDC("c1")
	e.waitPublished(append(want, more...))
	if s := r2.Stats(); s.Events != int64(len(more)) {
		t.Fatalf("restarted relay published %d events, want only the %d new ones", s.Events, len(more))
	}
	if s := e.states(ctx); s[StatePending] != len(want)+len(more) {
		t.Errorf("row states %v: this mode leaves rows pending", s)
	}
}

// TestCDCCrashPublishesEachEventOnce kills a relay process with SIGKILL
// at each crash point (at start, before fencing and before streaming; in
// its second source transaction, before producing, before the Kafka
// commit and after it, before PostgreSQL is told), restarts the relay and
// checks that every event is in Kafka exactly once (read_committed).
func TestCDCCrashPublishesEachEventOnce(t *testing.T) {
	for _, point := range []string{crashCDCBeforeFence, crashCDCBeforeStream, crashCDCBeforePublish, crashCDCBeforeCommit, crashCDCBeforeAck} {
		t.Run(point, func(t *testing.T) {
			e := newCDCEnv(t)
			ctx := testCtx(t)
			e.cdcSetup("k1")
			ids := e.placeOrdersInTxns(20, 5)
			atStart := point == crashCDCBeforeFence || point == crashCDCBeforeStream
			nth := 2
			if atStart {
				nth = 1
			}
			c := e.startCDCChild("k1", point, nth)
			killed, err := c.wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !killed {
				t.Fatalf("child exited with %v, not SIGKILL; stdout %q", c.cmd.ProcessState, c.output())
			}
			crash := parseCrash(t, c.output())
			want := ids[5:10]
			if atStart {
				want = nil
			}
			if crash.point != point || !slices.Equal(crash.ids, want) {
				t.Fatalf("crash report %+v, want point %s with events %v", crash, point, want)
			}
			// Where the crash was shows in the log: nothing yet, the first
			// transaction committed, the crashed one open (the restart
			// aborts it) or committed.
			level, inLog := kgo.ReadCommitted(), 5
			switch point {
			case crashCDCBeforeFence, crashCDCBeforeStream:
				inLog = 0
			case crashCDCBeforeCommit:
				// read_committed would wait for the open transaction.
				level, inLog = kgo.ReadUncommitted(), 10
			case crashCDCBeforeAck:
				inLog = 10
			}
			if seen := idsOf(e.readTopic(level)); len(seen) != inLog {
				t.Fatalf("after the crash %d events in the log, want %d", len(seen), inLog)
			}
			r, stop := e.startCDC("k1")
			e.waitPublished(ids)
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
			if got, want := r.Stats().Events, int64(len(ids)-min(inLog, 5)); point != crashCDCBeforeAck && got != want {
				t.Errorf("restarted relay published %d events, want %d", got, want)
			}
			if got, want := r.Stats().Events, int64(len(ids)-10); point == crashCDCBeforeAck && got != want {
				t.Errorf("restarted relay published %d events, want %d", got, want)
			}
		})
	}
}

// TestCDCCrashDuringRecoveryPublishesEachEventOnce kills a relay after a
// Kafka commit it had not yet confirmed to its slot, then its successor
// after it fenced and read the progress but before it streamed, and
// checks that a third relay still publishes nothing twice.
func TestCDCCrashDuringRecoveryPublishesEachEventOnce(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("k1")
	ids := e.placeOrdersInTxns(20, 5)
	for _, step := range []struct {
		point string
		nth   int
	}{{crashCDCBeforeAck, 2}, {crashCDCBeforeStream, 1}} {
		c := e.startCDCChild("k1", step.point, step.nth)
		if killed, err := c.wait(ctx); err != nil || !killed {
			t.Fatalf("%s: killed %v, err %v, state %v", step.point, killed, err, c.cmd.ProcessState)
		}
		if crash := parseCrash(t, c.output()); crash.point != step.point {
			t.Fatalf("crashed at %s, want %s", crash.point, step.point)
		}
	}
	r, stop := e.startCDC("k1")
	e.waitPublished(ids)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := r.Stats().Events; got != int64(len(ids)-10) {
		t.Errorf("last relay published %d events, want %d", got, len(ids)-10)
	}
}

// TestCDCRelayKilledAtRandomUnderLoadPublishesEachEventOnce writes events
// continuously while a change-data-capture relay process is SIGKILLed at
// random moments and restarted, then lets a last relay catch up and
// checks that every event is in Kafka exactly once. -outbox.long runs
// many more kills.
func TestCDCRelayKilledAtRandomUnderLoadPublishesEachEventOnce(t *testing.T) {
	// The relay publishes one Kafka transaction per source transaction:
	// the long run writes more slowly so that the last relay catches up
	// within the test's deadline.
	kills, pause := 6, 5*time.Millisecond
	if *longRuns {
		kills, pause = 60, 25*time.Millisecond
	}
	const writers = 3
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	e := newCDCEnv(t)
	e.cdcSetup("k1")
	ctx := testCtx(t)
	stopWriters := make(chan struct{})
	type result struct {
		ids []int64
		err error
	}
	results := make(chan result, writers)
	for w := range writers {
		go func() {
			var res result
			for i := 0; ; i++ {
				select {
				case <-stopWriters:
					results <- res
					return
				default:
				}
				// Source transactions of one to three events.
				err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
					for range 1 + i%3 {
						id, err := Write(ctx, tx, Event{Topic: e.topic, Key: []byte("w" + strconv.Itoa(w)), Payload: []byte(strconv.Itoa(i))})
						if err != nil {
							return err
						}
						res.ids = append(res.ids, id)
					}
					return nil
				})
				if err != nil {
					res.err = err
					results <- res
					return
				}
				time.Sleep(pause)
			}
		}()
	}
	for i := range kills {
		c := e.startCDCChild("k1", "", 0)
		// Most kills come while the relay streams and publishes, some
		// while it starts (it may wait for the slot to be released by
		// the process killed before it).
		if rng.IntN(4) != 0 {
			c.waitOutput(t, "streaming")
		}
		time.Sleep(time.Duration(rng.IntN(600)) * time.Millisecond)
		c.cmd.Process.Signal(syscall.SIGKILL)
		if killed, err := c.wait(ctx); err != nil || !killed {
			t.Fatalf("relay %d: killed %v, err %v, state %v", i, killed, err, c.cmd.ProcessState)
		}
	}
	close(stopWriters)
	var ids []int64
	for range writers {
		res := <-results
		if res.err != nil {
			t.Fatal(res.err)
		}
		ids = append(ids, res.ids...)
	}
	r, stop := e.startCDC("k1")
	e.waitPublished(ids)
	t.Logf("%d events; the last relay published %d", len(ids), r.Stats().Events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertKeyOrder(t, e.assertExactlyOnce(ids))
}

// waitOutput waits until the child has printed line.
func (c *child) waitOutput(t *testing.T, line string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(c.output(), line+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("child printed no %q line in 30s: %q", line, c.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startCDCChild runs a change-data-capture relay process that kills
// itself at point the nth time it reaches it; env adds settings
// (WEIR_OUTBOX_BATCH=N).
func (e *env) startCDCChild(relayID, point string, nth int, env ...string) *child {
	e.t.Helper()
	c := &child{exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestCDCRelayProcess$")
	c.cmd.Env = append(os.Environ(),
		cdcChildEnv+"=1",
		"WEIR_OUTBOX_DSN="+e.dsn,
		"WEIR_OUTBOX_BROKERS="+e.brokers,
		"WEIR_OUTBOX_RELAY="+relayID,
		"WEIR_OUTBOX_CRASH_POINT="+point,
		"WEIR_OUTBOX_CRASH_BATCH="+strconv.Itoa(nth),
	)
	c.cmd.Env = append(c.cmd.Env, env...)
	return e.runChild(c)
}

// TestCDCRelayProcess is the body of the relay process that
// TestCDCCrashPublishesEachEventOnce starts; run directly it has nothing
// to do.
func TestCDCRelayProcess(t *testing.T) {
	if os.Getenv(cdcChildEnv) == "" {
		return
	}
	ctx := context.Background()
	size, _ := strconv.Atoi(os.Getenv("WEIR_OUTBOX_BATCH"))
	r, err := NewCDCRelay(os.Getenv("WEIR_OUTBOX_DSN"), RelayConfig{
		RelayID:   os.Getenv("WEIR_OUTBOX_RELAY"),
		Brokers:   []string{os.Getenv("WEIR_OUTBOX_BROKERS")},
		BatchSize: size,
	})
	if err != nil {
		t.Fatal(err)
	}
	point := os.Getenv("WEIR_OUTBOX_CRASH_POINT")
	at, _ := strconv.Atoi(os.Getenv("WEIR_OUTBOX_CRASH_BATCH"))
	seen := 0
	r.crashAt = func(p string, ids []int64) {
		if p == crashCDCStreaming {
			fmt.Fprintln(os.Stdout, "streaming")
		}
		if p != point {
			return
		}
		if seen++; seen < at {
			return
		}
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = strconv.FormatInt(id, 10)
		}
		if len(s) == 0 {
			s = []string{"-"}
		}
		fmt.Fprintf(os.Stdout, "crash %s 0 %s\n", p, strings.Join(s, ","))
		os.Stdout.Sync()
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCDCLargeSourceTransactionIsPublishedInBoundedKafkaTransactions
// writes one source transaction of 25 events with a batch size of 10: it
// is published in Kafka transactions of at most 10 events (so its
// produce time and the relay's memory are bounded by the batch size, not
// by the source transaction), each event once, in order. A relay killed
// after two of those Kafka transactions committed, and one killed inside
// the third, are followed by one that publishes only the rest.
func TestCDCLargeSourceTransactionIsPublishedInBoundedKafkaTransactions(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("big")
	large := e.placeOrdersInTxns(25, 25)
	small := e.placeOrdersInTxns(1, 1)
	all := append(append([]int64{}, large...), small...)

	// The first process dies before producing the third part; the second,
	// which resumes after the second part, before committing it.
	for _, step := range []struct {
		point string
		nth   int
	}{{crashCDCBeforePublish, 3}, {crashCDCBeforeCommit, 1}} {
		point := step.point
		c := e.startCDCChild("big", point, step.nth, "WEIR_OUTBOX_BATCH=10")
		if killed, err := c.wait(ctx); err != nil || !killed {
			t.Fatalf("%s: killed %v, err %v, state %v, output %q", point, killed, err, c.cmd.ProcessState, c.output())
		}
		crash := parseCrash(t, c.output())
		if crash.point != point || !slices.Equal(crash.ids, large[20:]) {
			t.Fatalf("crash %+v, want %s holding the third part %v", crash, point, large[20:])
		}
		// The first two parts are committed; the third is not in the log
		// yet, or in it in an open transaction (which read_committed
		// would wait for).
		level, want := kgo.ReadCommitted(), 20
		if point == crashCDCBeforeCommit {
			level, want = kgo.ReadUncommitted(), 25
		}
		if seen := idsOf(e.readTopic(level)); len(seen) != want {
			t.Fatalf("after the crash at %s, %d events in the log, want %d", point, len(seen), want)
		}
	}
	cfg := e.config("big", 10)
	r, stop := e.startCDCWith(cfg)
	got := e.waitPublished(all)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var order []int64
	for _, p := range got {
		order = append(order, p.id)
	}
	if !slices.Equal(order, all) {
		t.Fatalf("published order %v, want %v", order, all)
	}
	if s := r.Stats(); s.Events != 6 || s.Batches != 2 {
		t.Fatalf("last relay: %+v, want the third part (5 events) and the small transaction in 2 Kafka transactions", s)
	}
}
