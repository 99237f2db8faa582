package e2e

// Group members for the consumer-group tests: in-process franz-go members,
// and members run as child processes (this test binary re-executed) so
// that a test can SIGKILL one at a chosen point. A member killed that way
// never sends LeaveGroup, and whatever it processed but had not committed,
// or committed but had not processed, stays so.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// childRoleEnv, when set, makes TestMain run a child role instead of the
// tests.
const childRoleEnv = "WEIR_E2E_CHILD"

// The orders in which a member processes and commits what it polled.
const (
	processThenCommit = "process-then-commit" // at-least-once
	commitThenProcess = "commit-then-process" // at-most-once
)

func runChild(role string) int {
	switch role {
	case "member":
	case "eos-worker":
		return runEOSWorker()
	case "dedup-consumer":
		return runDedupConsumer()
	case "member848":
		return runMember848()
	default:
		fmt.Fprintf(os.Stderr, "unknown child role %q\n", role)
		return 2
	}
	if err := runMember(); err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		return 1
	}
	return 0
}

// runMember is a group member driven over stdin and stdout. For each poll
// that returns records it processes them (prints "rec PARTITION OFFSET
// VALUE" lines) and commits them synchronously ("committed N"), in the
// order WEIR_E2E_MODE says, and stops at three points, printing "pause
// POINT" and reading a line from stdin before going on: between the two
// steps (before-commit or before-process) and after both (idle).
// Rebalances are held off while a poll's records are in hand.
func runMember() error {
	session, err := time.ParseDuration(os.Getenv("WEIR_E2E_SESSION"))
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(memberOpts(os.Getenv("WEIR_E2E_BROKERS"), os.Getenv("WEIR_E2E_GROUP"), os.Getenv("WEIR_E2E_TOPIC"), session)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	pause := func(point string) bool {
		fmt.Fprintf(out, "pause %s\n", point)
		out.Flush()
		return in.Scan()
	}
	ctx := context.Background()
	for {
		fs := cl.PollRecords(ctx, 10)
		fs.EachError(func(t string, p int32, err error) { fmt.Fprintf(os.Stderr, "fetch %s[%d]: %v\n", t, p, err) })
		recs := fs.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		process := func() {
			for _, r := range recs {
				fmt.Fprintf(out, "rec %d %d %s\n", r.Partition, r.Offset, r.Value)
			}
			out.Flush()
		}
		commit := func() error {
			if err := cl.CommitRecords(ctx, recs...); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			fmt.Fprintf(out, "committed %d\n", len(recs))
			return nil
		}
		if os.Getenv("WEIR_E2E_MODE") == commitThenProcess {
			if err := commit(); err != nil {
				return err
			}
			if !pause("before-process") {
				return nil
			}
			process()
		} else {
			process()
			if !pause("before-commit") {
				return nil
			}
			if err := commit(); err != nil {
				return err
			}
		}
		if !pause("idle") {
			return nil
		}
		cl.AllowRebalance()
	}
}

// memberOpts configures every test member: a group consumer from the
// start of the topic that commits only explicitly, holds rebalances off
// while it processes, and has a short session so the dead are noticed
// soon.
func memberOpts(brokers, group, topic string, session time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(brokers),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(session),
		kgo.HeartbeatInterval(session / 10),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.FetchMaxWait(time.Second),
	}
}

// consumed is one record a member processed.
type consumed struct {
	partition int32
	offset    int64
	value     string
}

// childMember is the parent's handle on a member process.
type childMember struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startChildMember(t testing.TB, brokers, group, topic, mode string, session time.Duration) *childMember {
	t.Helper()
	return startChild(t, "member", "WEIR_E2E_BROKERS="+brokers, "WEIR_E2E_GROUP="+group,
		"WEIR_E2E_TOPIC="+topic, "WEIR_E2E_MODE="+mode, "WEIR_E2E_SESSION="+session.String())
}

// startChild runs this test binary again in a child role with env added,
// its stdin piped and its stdout lines on the returned member's channel.
func startChild(t testing.TB, role string, env ...string) *childMember {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childRoleEnv+"="+role), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &childMember{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		defer close(m.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			m.lines <- sc.Text()
		}
	}()
	t.Cleanup(m.kill)
	return m
}

// cycle reads the member's output up to its next pause and returns the
// records it processed meanwhile, how many it committed, and the pause.
func (m *childMember) cycle(ctx context.Context) (recs []consumed, committed int, point string) {
	m.t.Helper()
	for {
		var line string
		select {
		case l, ok := <-m.lines:
			if !ok {
				m.t.Errorf("member exited (%v)", m.cmd.Wait())
				return recs, committed, "exited"
			}
			line = l
		case <-ctx.Done():
			m.t.Errorf("member: no pause before the deadline: %v", ctx.Err())
			return recs, committed, "timeout"
		}
		f := strings.SplitN(line, " ", 4)
		switch f[0] {
		case "rec":
			p, _ := strconv.Atoi(f[1])
			o, _ := strconv.ParseInt(f[2], 10, 64)
			recs = append(recs, consumed{int32(p), o, f[3]})
		case "committed":
			committed, _ = strconv.Atoi(f[1])
		case "pause":
			return recs, committed, f[1]
		default:
			m.t.Errorf("member printed %q", line)
		}
	}
}

// resume lets the member go on from a pause.
func (m *childMember) resume() { fmt.Fprintln(m.stdin, "go") }

// kill sends SIGKILL and reaps the process.
func (m *childMember) kill() {
	if m.cmd.ProcessState != nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGKILL)
	m.cmd.Wait()
}

// inMember is a member in this process that processes each poll, commits
// it synchronously, and only then lets a rebalance happen: it never
// consumes a record twice unless it crashes.
type inMember struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startInMember(t testing.TB, brokers, group, topic string, session time.Duration, sink func([]*kgo.Record)) *inMember {
	t.Helper()
	cl, err := kgo.NewClient(memberOpts(brokers, group, topic, session)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &inMember{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			recs := cl.PollRecords(ctx, 100).Records()
			if len(recs) > 0 {
				sink(recs)
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := cl.CommitRecords(cctx, recs...); err != nil {
					t.Errorf("commit: %v", err)
				}
				ccancel()
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(m.leave)
	return m
}

// leave stops the member after its current poll and leaves the group.
func (m *inMember) leave() {
	m.cancel()
	<-m.done
	m.cl.Close()
}

// tally counts how often each value was consumed.
type tally struct {
	mu     sync.Mutex
	counts map[string]int
	by     map[string]int // per consumer name
}

func newTally() *tally { return &tally{counts: map[string]int{}, by: map[string]int{}} }

func (tl *tally) add(who string, values ...string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, v := range values {
		tl.counts[v]++
		tl.by[who]++
	}
}

func (tl *tally) sink(who string) func([]*kgo.Record) {
	return func(recs []*kgo.Record) {
		for _, r := range recs {
			tl.add(who, string(r.Value))
		}
	}
}

// countOf is how often v was consumed.
func (tl *tally) countOf(v string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.counts[v]
}

// distinct is how many different values were consumed.
func (tl *tally) distinct() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.counts)
}

func (tl *tally) count(who string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.by[who]
}

// exactlyOnce fails unless exactly values [0, n) were consumed, each once.
func (tl *tally) exactlyOnce(t testing.TB, n int) {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for v, c := range tl.counts {
		if c != 1 {
			t.Errorf("value %s consumed %d times", v, c)
		}
	}
	for i := range n {
		if tl.counts[value(i)] == 0 {
			t.Errorf("value %s never consumed", value(i))
		}
	}
	if len(tl.counts) != n {
		t.Errorf("%d distinct values consumed, want %d", len(tl.counts), n)
	}
}

func value(i int) string { return fmt.Sprintf("v%05d", i) }

// produceSpread writes value(from) … value(to-1) round-robin over the
// topic's partitions, acknowledged by every replica; opts are added to
// the producer's.
func produceSpread(t testing.TB, brokers, topic string, from, to int, opts ...kgo.Opt) {
	t.Helper()
	cl := newClient(t, brokers, append([]kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, opts...)...)
	defer cl.Close()
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Value: []byte(value(i))})
	}
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds, failing the test at the deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not reached before the deadline", what)
		case <-tick.C:
		}
	}
}
