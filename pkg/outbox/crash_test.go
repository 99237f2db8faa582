package outbox

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// crashReport is what a child prints before killing itself.
type crashReport struct {
	point string
	batch int64
	ids   []int64
}

func parseCrash(t *testing.T, out string) crashReport {
	t.Helper()
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "crash" {
			continue
		}
		r := crashReport{point: f[1]}
		var err error
		if r.batch, err = strconv.ParseInt(f[2], 10, 64); err != nil {
			t.Fatalf("crash line %q: %v", line, err)
		}
		for s := range strings.SplitSeq(f[3], ",") {
			if s == "-" {
				break
			}
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("crash line %q: %v", line, err)
			}
			r.ids = append(r.ids, id)
		}
		return r
	}
	t.Fatalf("child printed no crash line: %q", out)
	return crashReport{}
}

// claimedIDs returns the ids of the rows relayID holds claimed.
func (e *env) claimedIDs(relayID string) []int64 {
	e.t.Helper()
	rows, err := e.pool.Query(testCtx(e.t), `SELECT id FROM weir_outbox WHERE state = 'claimed' AND relay_id = $1 ORDER BY id`, relayID)
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func idsOf(ps []published) map[int64]int {
	m := map[int64]int{}
	for _, p := range ps {
		m[p.id]++
	}
	return m
}

// TestCrashAtEveryPointPublishesEachEventOnce kills a relay process with
// SIGKILL in its second batch at each crash point, restarts the relay and
// checks that every event is in Kafka exactly once (read_committed) and
// every row is sent. Before the restart it checks that the crash happened
// where intended: the rows are still claimed, and the batch is absent from
// the log (before-publish), in it but uncommitted (before-commit), or
// already committed (before-mark-sent).
func TestCrashAtEveryPointPublishesEachEventOnce(t *testing.T) {
	const events, batchSize = 50, 10
	for _, point := range []string{crashBeforePublish, crashBeforeCommit, crashBeforeMarkSent} {
		t.Run(point, func(t *testing.T) {
			e := newEnv(t)
			ids := e.placeOrders(events)
			c := e.startChild("r1", batchSize, point, 2)
			killed, err := c.wait(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if !killed {
				t.Fatalf("child exited with %v, not SIGKILL; stdout %q", c.cmd.ProcessState, c.output())
			}
			crash := parseCrash(t, c.output())
			if crash.point != point || len(crash.ids) != batchSize {
				t.Fatalf("crash report %+v, want point %s with %d events", crash, point, batchSize)
			}
			if got := e.claimedIDs("r1"); !slices.Equal(got, crash.ids) {
				t.Fatalf("rows claimed after the crash: %v, want the crashed batch %v", got, crash.ids)
			}
			if s := e.states(testCtx(t)); s[StateSent] != batchSize {
				t.Fatalf("after the crash: %v, want the first batch (%d rows) sent", s, batchSize)
			}

			// Where the crashed batch is in Kafka tells where the crash was.
			var committedBefore int
			switch point {
			case crashBeforePublish:
				seen := idsOf(e.readTopic(kgo.ReadUncommitted()))
				for _, id := range crash.ids {
					if seen[id] != 0 {
						t.Fatalf("event %d of the crashed batch is in the log: the crash came after publishing", id)
					}
				}
				committedBefore = batchSize
			case crashBeforeCommit:
				seen := idsOf(e.readTopic(kgo.ReadUncommitted()))
				for _, id := range crash.ids {
					if seen[id] != 1 {
						t.Fatalf("event %d of the crashed batch appears %d times in the log, want once (uncommitted)", id, seen[id])
					}
				}
				committedBefore = batchSize
			case crashBeforeMarkSent:
				seen := idsOf(e.readTopic(kgo.ReadCommitted()))
				for _, id := range crash.ids {
					if seen[id] != 1 {
						t.Fatalf("event %d of the crashed batch committed %d times before the restart, want once", id, seen[id])
					}
				}
				committedBefore = 2 * batchSize
			}

			r := e.startRelay(e.config("r1", batchSize))
			e.waitAllSent(events)
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			// The restarted relay published only what was not yet
			// committed: nothing of the crashed batch if its
			// transaction had committed.
			if got, want := r.r.Stats().Events, int64(events-committedBefore); got != want {
				t.Errorf("restarted relay published %d events, want %d", got, want)
			}
			assertKeyOrder(t, e.assertExactlyOnce(ids))
		})
	}
}

// TestRelayKilledAtRandomUnderLoadPublishesEachEventOnce writes orders
// continuously while a relay process is SIGKILLed at random moments and
// restarted, then lets a last relay drain the outbox and checks that
// every event is in Kafka exactly once. -outbox.long runs many more
// kills.
func TestRelayKilledAtRandomUnderLoadPublishesEachEventOnce(t *testing.T) {
	kills := 8
	if *longRuns {
		kills = 80
	}
	const writers = 3
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	e := newEnv(t)

	ctx := testCtx(t)
	stop := make(chan struct{})
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
				case <-stop:
					results <- res
					return
				default:
				}
				id, err := e.placeOrder(ctx, "w"+strconv.Itoa(w)+"-c"+strconv.Itoa(i%5))
				if err != nil {
					res.err = err
					results <- res
					return
				}
				res.ids = append(res.ids, id)
				time.Sleep(2 * time.Millisecond) // a steady load, not a burst
			}
		}()
	}
	for i := range kills {
		c := e.startChild("r1", 20, "", 0)
		// A random moment: early ones land in the relay's start and
		// reconciliation, later ones amid batches.
		time.Sleep(time.Duration(50+rng.IntN(1000)) * time.Millisecond)
		c.cmd.Process.Signal(syscall.SIGKILL)
		killed, err := c.wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !killed {
			t.Fatalf("relay %d exited before it was killed: %v", i, c.cmd.ProcessState)
		}
		t.Logf("kill %d: rows %v", i, e.states(ctx))
	}
	close(stop)
	var ids []int64
	for range writers {
		res := <-results
		if res.err != nil {
			t.Fatal(res.err)
		}
		ids = append(ids, res.ids...)
	}
	r := e.startRelay(e.config("r1", 20))
	e.waitAllSent(len(ids))
	t.Logf("%d events; the last relay published %d", len(ids), r.r.Stats().Events)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	assertKeyOrder(t, e.assertExactlyOnce(ids))
}

// TestProgressFromAnotherDatabaseIsNotTrusted runs a relay id against one
// database, then against a fresh one on the same broker, where its first
// batch has the same number and event ids as the first database's. After
// a crash before publishing there, the progress record of the first
// database must not make the restarted relay mark the unpublished batch
// sent.
func TestProgressFromAnotherDatabaseIsNotTrusted(t *testing.T) {
	first := newEnv(t)
	firstIDs := first.placeOrders(5)
	r := first.startRelay(first.config("r1", 5))
	first.waitAllSent(len(firstIDs))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	second := newEnvOn(t, first.brokers, "orders2")
	ids := second.placeOrders(5)
	c := second.startChild("r1", 5, crashBeforePublish, 1)
	if killed, err := c.wait(testCtx(t)); err != nil || !killed {
		t.Fatalf("child: killed %v, err %v, state %v", killed, err, c.cmd.ProcessState)
	}
	if crash := parseCrash(t, c.output()); !slices.Equal(crash.ids, firstIDs) {
		t.Fatalf("crashed batch %v, want the same ids as the first database's batch %v", crash.ids, firstIDs)
	}
	r = second.startRelay(second.config("r1", 5))
	second.waitAllSent(len(ids))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	second.assertExactlyOnce(ids)
}

// TestCrashDuringRecoveryPublishesEachEventOnce kills a relay after its
// second batch committed but before the rows were marked, then kills its
// successor in the middle of starting up (fenced and progress read, table
// not yet reconciled), and checks that a third relay still publishes
// nothing twice.
func TestCrashDuringRecoveryPublishesEachEventOnce(t *testing.T) {
	const events, batchSize = 50, 10
	e := newEnv(t)
	ids := e.placeOrders(events)
	for _, point := range []string{crashBeforeMarkSent, crashBeforeReconcile} {
		c := e.startChild("r1", batchSize, point, map[string]int{crashBeforeMarkSent: 2, crashBeforeReconcile: 1}[point])
		killed, err := c.wait(testCtx(t))
		if err != nil || !killed {
			t.Fatalf("%s: killed %v, err %v, state %v", point, killed, err, c.cmd.ProcessState)
		}
		if crash := parseCrash(t, c.output()); crash.point != point {
			t.Fatalf("crashed at %s, want %s", crash.point, point)
		}
	}
	// The second batch is committed, and still claimed after the second crash.
	if s := e.states(testCtx(t)); s[StateClaimed] != batchSize || s[StateSent] != batchSize {
		t.Fatalf("after the crashes: %v, want %d sent and %d claimed", s, batchSize, batchSize)
	}
	r := e.startRelay(e.config("r1", batchSize))
	e.waitAllSent(events)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if got := r.r.Stats().Events; got != events-2*batchSize {
		t.Errorf("last relay published %d events, want %d", got, events-2*batchSize)
	}
	assertKeyOrder(t, e.assertExactlyOnce(ids))
}
