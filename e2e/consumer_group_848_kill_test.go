package e2e

// A consumer-protocol member (KIP-848) killed with SIGKILL: it never
// leaves, so the coordinator takes its partitions away only when its
// session times out; until then nobody else consumes them, and afterwards
// the survivor resumes from the dead member's last commit.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// runMember848 is a consumer-protocol member process that reports every
// event as a line with its wall-clock time in ns: "assigned T P,P",
// "revoked T P,P", "lost T P,P", "rec T P O" and "committed T P NEXT".
// It processes each poll's records (sleeping WEIR_E2E_DELAY per record),
// commits them synchronously, and only then lets a rebalance proceed.
func runMember848() int {
	delay, err := time.ParseDuration(os.Getenv("WEIR_E2E_DELAY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "member848:", err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	emit := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%s %d %s\n", strings.Fields(format)[0], time.Now().UnixNano(), fmt.Sprintf(strings.TrimPrefix(format, strings.Fields(format)[0]+" "), args...))
		out.Flush()
	}
	list := func(m map[string][]int32) string {
		var ps []string
		for _, p := range m[os.Getenv("WEIR_E2E_TOPIC")] {
			ps = append(ps, strconv.Itoa(int(p)))
		}
		return strings.Join(ps, ",")
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(os.Getenv("WEIR_E2E_BROKERS")),
		kgo.ConsumerGroup(os.Getenv("WEIR_E2E_GROUP")),
		kgo.ConsumeTopics(os.Getenv("WEIR_E2E_TOPIC")),
		kgo.ServerSideBalancer(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { emit("assigned %s", list(m)) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { emit("revoked %s", list(m)) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { emit("lost %s", list(m)) }),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "member848:", err)
		return 1
	}
	defer cl.Close()
	ctx := context.Background()
	for {
		fs := cl.PollRecords(ctx, 20)
		fs.EachError(func(t string, p int32, err error) { fmt.Fprintf(os.Stderr, "fetch %s[%d]: %v\n", t, p, err) })
		recs := fs.Records()
		next := map[int32]int64{}
		for _, r := range recs {
			time.Sleep(delay)
			emit("rec %d %d", r.Partition, r.Offset)
			next[r.Partition] = r.Offset + 1
		}
		if len(recs) > 0 {
			if err := cl.CommitRecords(ctx, recs...); err != nil {
				fmt.Fprintln(os.Stderr, "member848: commit:", err)
			} else {
				for p, o := range next {
					emit("committed %d %d", p, o)
				}
			}
		}
		cl.AllowRebalance()
	}
}

// event848 is one line of a member848 process.
type event848 struct {
	kind   string
	at     int64
	ps     []int32 // assigned, revoked, lost
	p      int32   // rec, committed
	offset int64
}

// child848 collects a member848 process's events.
type child848 struct {
	*childMember
	mu     sync.Mutex
	events []event848
}

func startMember848Proc(t *testing.T, addr, group, topic string, delay time.Duration) *child848 {
	t.Helper()
	c := &child848{childMember: startChild(t, "member848", "WEIR_E2E_BROKERS="+addr, "WEIR_E2E_GROUP="+group,
		"WEIR_E2E_TOPIC="+topic, "WEIR_E2E_DELAY="+delay.String())}
	go func() {
		for line := range c.lines {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			ev := event848{kind: f[0]}
			ev.at, _ = strconv.ParseInt(f[1], 10, 64)
			switch ev.kind {
			case "assigned", "revoked", "lost":
				if len(f) > 2 {
					for _, s := range strings.Split(f[2], ",") {
						p, _ := strconv.Atoi(s)
						ev.ps = append(ev.ps, int32(p))
					}
				}
			case "rec", "committed":
				if len(f) < 4 {
					continue
				}
				p, _ := strconv.Atoi(f[2])
				ev.p = int32(p)
				ev.offset, _ = strconv.ParseInt(f[3], 10, 64)
			}
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *child848) snapshot() []event848 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]event848(nil), c.events...)
}

// owned is what the member owns after its events so far.
func owned848(evs []event848) map[int32]bool {
	own := map[int32]bool{}
	for _, ev := range evs {
		for _, p := range ev.ps {
			own[p] = ev.kind == "assigned"
		}
	}
	for p, ok := range own {
		if !ok {
			delete(own, p)
		}
	}
	return own
}

// interval is a span of a partition's ownership, [from, to) in ns.
type interval struct{ from, to int64 }

// ownership848 is each partition's ownership intervals; an interval still
// open ends at end.
func ownership848(evs []event848, end int64) map[int32][]interval {
	out := map[int32][]interval{}
	open := map[int32]int64{}
	for _, ev := range evs {
		for _, p := range ev.ps {
			if ev.kind == "assigned" {
				if _, ok := open[p]; !ok {
					open[p] = ev.at
				}
			} else if from, ok := open[p]; ok {
				out[p] = append(out[p], interval{from, ev.at})
				delete(open, p)
			}
		}
	}
	for p, from := range open {
		out[p] = append(out[p], interval{from, end})
	}
	return out
}

func TestConsumerGroup848KilledMemberLosesItsPartitionsOnlyAfterItsSessionTimeout(t *testing.T) {
	b, _ := startBroker(t, fast848)
	addr := b.Addr()
	const topic, group, partitions, total = "cg848-kill", "cg848-kill-g", 4, 800
	createTopic(t, newAdmin(t, addr), topic, partitions, nil)
	produceSpread(t, addr, topic, 0, total)

	a := startMember848Proc(t, addr, group, topic, 10*time.Millisecond)
	eventually(t, "a owns every partition", func() bool { return len(owned848(a.snapshot())) == partitions })
	s := startMember848Proc(t, addr, group, topic, time.Millisecond)
	eventually(t, "the two members split the partitions", func() bool {
		return len(owned848(a.snapshot())) == partitions/2 && len(owned848(s.snapshot())) == partitions/2
	})
	// Let a consume some of its half, then kill it mid-stream.
	recsOf := func(evs []event848) int {
		n := 0
		for _, ev := range evs {
			if ev.kind == "rec" {
				n++
			}
		}
		return n
	}
	split := recsOf(a.snapshot())
	eventually(t, "a consumes after the split", func() bool { return recsOf(a.snapshot()) >= split+30 })
	a.cmd.Process.Kill()
	a.cmd.Wait()
	killedAt := time.Now().UnixNano()
	aEvents := a.snapshot()
	aOwned := owned848(aEvents)

	eventually(t, "the survivor owns every partition", func() bool { return len(owned848(s.snapshot())) == partitions })
	// The survivor got the dead member's partitions only after its
	// session timeout (3 s) had run out: until then they were a's.
	for _, ev := range s.snapshot() {
		if ev.kind != "assigned" {
			continue
		}
		for _, p := range ev.ps {
			if aOwned[p] && ev.at < killedAt+int64(2*time.Second) {
				t.Fatalf("partition %d reassigned %v after a was killed, before its 3 s session ran out", p, time.Duration(ev.at-killedAt))
			}
		}
	}

	// Every record is consumed (at least once).
	consumed := func() map[int32]map[int64]bool {
		out := map[int32]map[int64]bool{}
		for _, evs := range [][]event848{aEvents, s.snapshot()} {
			for _, ev := range evs {
				if ev.kind == "rec" {
					if out[ev.p] == nil {
						out[ev.p] = map[int64]bool{}
					}
					out[ev.p][ev.offset] = true
				}
			}
		}
		return out
	}
	eventually(t, "every record consumed", func() bool {
		n := 0
		for _, offs := range consumed() {
			n += len(offs)
		}
		return n == total
	})

	// No record was consumed by both members while both owned its
	// partition: each member's records lie in its own ownership
	// intervals, and the intervals of a partition never overlap.
	end := time.Now().UnixNano()
	ownA, ownS := ownership848(aEvents, killedAt), ownership848(s.snapshot(), end)
	for p, ias := range ownA {
		for _, ia := range ias {
			for _, is := range ownS[p] {
				if ia.from < is.to && is.from < ia.to {
					t.Fatalf("partition %d owned by both members: a %v, survivor %v", p, ia, is)
				}
			}
		}
	}
	inside := func(own map[int32][]interval, ev event848) bool {
		for _, iv := range own[ev.p] {
			if ev.at >= iv.from && ev.at <= iv.to {
				return true
			}
		}
		return false
	}
	for who, evs := range map[string][]event848{"a": aEvents, "survivor": s.snapshot()} {
		own := ownA
		if who == "survivor" {
			own = ownS
		}
		for _, ev := range evs {
			if ev.kind == "rec" && !inside(own, ev) {
				t.Fatalf("%s consumed %d@%d outside its ownership of the partition", who, ev.p, ev.offset)
			}
		}
	}

	// Redelivery is bounded by what a had not committed: the survivor
	// re-consumes a's partitions from a's last commit, not earlier.
	lastCommit := map[int32]int64{}
	for _, ev := range aEvents {
		if ev.kind == "committed" {
			lastCommit[ev.p] = max(lastCommit[ev.p], ev.offset)
		}
	}
	aRecs := map[int32]map[int64]bool{}
	for _, ev := range aEvents {
		if ev.kind == "rec" {
			if aRecs[ev.p] == nil {
				aRecs[ev.p] = map[int64]bool{}
			}
			aRecs[ev.p][ev.offset] = true
		}
	}
	for _, ev := range s.snapshot() {
		if ev.kind == "rec" && ev.at > killedAt && aOwned[ev.p] && aRecs[ev.p][ev.offset] && ev.offset < lastCommit[ev.p] {
			t.Fatalf("the survivor re-consumed %d@%d, which a had committed (up to %d)", ev.p, ev.offset, lastCommit[ev.p])
		}
	}
}
