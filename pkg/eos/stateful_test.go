package eos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/weir"
)

// The SIGKILL test runs a worker in a child process: this test binary,
// started again with workerEnv set.
const workerEnv = "WEIR_EOS_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		os.Exit(runChildWorker())
	}
	os.Exit(m.Run())
}

// runChildWorker counts input records per key, slowly, until killed or
// stopped with SIGTERM (a clean stop). It prints a line per commit.
func runChildWorker() int {
	cfg := childConfig(os.Getenv("BROKER"), os.Getenv("STATE_DIR"))
	if ms, _ := strconv.Atoi(os.Getenv("SESSION_MS")); ms > 0 {
		// A dynamic member with a short session: the group moves its
		// partitions soon after it stops answering.
		cfg.ClientOpts = []kgo.Opt{kgo.SessionTimeout(time.Duration(ms) * time.Millisecond)}
	}
	cfg.OnCommit = func(n int) { fmt.Printf("committed %d\n", n) }
	p, err := NewStateful(cfg, slowCount())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer p.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := p.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func childConfig(broker, dir string) Config {
	return Config{Brokers: []string{broker}, TransactionalID: "counter-0", Group: "counter",
		InputTopics: []string{"in"}, OutputTopic: "out", MaxPerTxn: 10,
		Store: "counts", StateDir: dir,
		// Static membership: a restarted worker takes its partitions
		// back at once instead of waiting out its dead session.
		ClientOpts: []kgo.Opt{kgo.InstanceID("counter-0")}}
}

// slowCount is Count with a pause per record, so that a SIGKILL lands
// inside transactions.
func slowCount() Process {
	count := Count()
	return func(ctx context.Context, in *kgo.Record, s Store) ([]*kgo.Record, error) {
		time.Sleep(2 * time.Millisecond)
		return count(ctx, in, s)
	}
}

type rig struct {
	t    *testing.T
	ctx  context.Context
	addr string
	cl   *kgo.Client
	adm  *kadm.Client
}

func newRig(t *testing.T, partitions int32) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	b, err := weir.Start(ctx, weir.Config{DataDir: t.TempDir(), Settings: map[string]string{"group.initial.rebalance.delay.ms": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	r := &rig{t: t, ctx: ctx, addr: b.Addr(), cl: cl, adm: kadm.NewClient(cl)}
	for _, topic := range []string{"in", "out"} {
		if _, err := r.adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// produce writes one record per key, in order, and returns how many of
// each it wrote.
func (r *rig) produce(keys ...string) map[string]int64 {
	r.t.Helper()
	n := map[string]int64{}
	rs := make([]*kgo.Record, len(keys))
	for i, k := range keys {
		rs[i] = &kgo.Record{Key: []byte(k), Value: []byte(strconv.Itoa(i))}
		n[k]++
	}
	if err := r.cl.ProduceSync(r.ctx, rs...).FirstErr(); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// committedInput sums the group's committed offsets over the input.
func (r *rig) committedInput(group string) int64 {
	r.t.Helper()
	offs, err := r.adm.FetchOffsets(r.ctx, group)
	if err != nil {
		r.t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == "in" && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// readLog reads a topic to its end with the isolation level given and
// returns the last value per key, plus how many data records it read.
func (r *rig) readLog(topic string, iso kgo.IsolationLevel) (map[string]string, int) {
	r.t.Helper()
	ends, err := r.adm.ListEndOffsets(r.ctx, topic)
	if err != nil {
		r.t.Fatal(err)
	}
	parts := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			parts[o.Partition] = kgo.NewOffset().AtStart()
			remaining[o.Partition] = o.Offset
		}
	})
	last := map[string]string{}
	if len(parts) == 0 {
		return last, 0
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.addr), kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		r.t.Fatal(err)
	}
	defer cl.Close()
	n := 0
	for len(remaining) > 0 {
		fs := cl.PollFetches(r.ctx)
		if err := fs.Err(); err != nil {
			r.t.Fatalf("reading %s: %v", topic, err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset+1 >= remaining[rec.Partition] {
				delete(remaining, rec.Partition)
			}
			if rec.Attrs.IsControl() {
				return
			}
			n++
			if rec.Value == nil {
				delete(last, string(rec.Key))
			} else {
				last[string(rec.Key)] = string(rec.Value)
			}
		})
	}
	return last, n
}

// runUntil runs p until cond holds, then stops it cleanly.
func (r *rig) runUntil(p *Processor, what string, cond func() bool) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for !cond() {
		select {
		case err := <-done:
			r.t.Fatalf("processor stopped before %s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
		if r.ctx.Err() != nil {
			cancel()
			r.t.Fatalf("no %s before the deadline", what)
		}
	}
	cancel()
	if err := <-done; err != nil {
		r.t.Fatalf("Run: %v", err)
	}
	p.Close()
}

func restoredRecords(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "weir_eos_restore_records_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func commitsTimed(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "weir_eos_commit_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// gauge sums a gauge's series.
func gauge(t *testing.T, reg *prometheus.Registry, name string) (sum float64, found bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum, found = sum+m.GetGauge().GetValue(), true
			}
		}
	}
	return sum, found
}

func query(t *testing.T, p *Processor, store, key string) (string, int) {
	t.Helper()
	rec := httptest.NewRecorder()
	p.QueryHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/stores/"+store+"/"+key, nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b), rec.Code
}

func wantCounts(t *testing.T, p *Processor, want map[string]int64) {
	t.Helper()
	for k, n := range want {
		if got, code := query(t, p, "counts", k); code != 200 || got != strconv.FormatInt(n, 10) {
			t.Errorf("store count of %s: %q (HTTP %d), want %d", k, got, code, n)
		}
	}
}

// A clean stop writes checkpoints: the next start on the same state
// directory restores nothing from the changelog, and its store still
// holds every count.
func TestRestartAfterCleanStopRestoresNothing(t *testing.T) {
	r := newRig(t, 2)
	dir := t.TempDir()
	cfg := Config{Brokers: []string{r.addr}, TransactionalID: "c1", Group: "counter",
		InputTopics: []string{"in"}, OutputTopic: "out", MaxPerTxn: 7, Store: "counts", StateDir: dir}
	want := r.produce(strings.Split("a b c a b a d e a c f g a b", " ")...)

	reg1 := prometheus.NewRegistry()
	cfg.Registerer = reg1
	p1, err := NewStateful(cfg, Count())
	if err != nil {
		t.Fatal(err)
	}
	r.runUntil(p1, "all inputs committed", func() bool { return r.committedInput("counter") == 14 })
	if n := restoredRecords(t, reg1); n != 0 {
		t.Fatalf("a first start restored %v records from an empty changelog", n)
	}
	if n := commitsTimed(t, reg1); n == 0 {
		t.Fatal("no commit latency recorded for the committed transactions")
	}
	if lag, ok := gauge(t, reg1, "weir_eos_input_lag_offsets"); !ok || lag != 0 {
		t.Fatalf("input lag %v (recorded: %v) once every input is committed, want 0", lag, ok)
	}
	for _, part := range []string{"0", "1"} {
		if _, err := os.Stat(filepath.Join(dir, "counts-"+part+".db.checkpoint")); err != nil {
			t.Fatalf("no checkpoint after a clean stop: %v", err)
		}
	}

	more := r.produce("a", "z")
	want["a"] += more["a"]
	want["z"] += more["z"]
	reg2 := prometheus.NewRegistry()
	cfg.Registerer = reg2
	p2, err := NewStateful(cfg, Count())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- p2.Run(ctx) }()
	for r.committedInput("counter") < 16 {
		if r.ctx.Err() != nil {
			t.Fatal("the new inputs were not committed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantCounts(t, p2, want)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p2.Close()
	if n := restoredRecords(t, reg2); n != 0 {
		t.Fatalf("a start after a clean stop restored %v changelog records, want none", n)
	}
	// The changelog agrees with the store.
	log, _ := r.readLog(ChangelogTopic("counter", "counts"), kgo.ReadCommitted())
	for k, n := range want {
		if log[k] != strconv.FormatInt(n, 10) {
			t.Errorf("changelog count of %s: %q, want %d", k, log[k], n)
		}
	}
}

// A worker SIGKILLed mid-stream — inside a transaction or between a
// commit and its local write — leaves no checkpoint; its restart rebuilds
// the store from the committed changelog and ends with every key counted
// exactly once.
func TestRestoreAfterWorkerSIGKILLEqualsTheCommittedState(t *testing.T) {
	r := newRig(t, 2)
	dir := t.TempDir()
	keys := make([]string, 600)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i%13)
	}
	want := r.produce(keys...)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"=1", "BROKER="+r.addr, "STATE_DIR="+dir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for r.committedInput("counter") < 100 {
		if r.ctx.Err() != nil {
			_ = cmd.Process.Kill()
			t.Fatalf("worker committed nothing:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	committed := r.committedInput("counter")
	if committed >= int64(len(keys)) {
		t.Fatalf("the worker finished (%d inputs committed) before it was killed", committed)
	}
	// The changelog's committed state is the count of the committed
	// inputs, whatever the kill interrupted.
	log, _ := r.readLog(ChangelogTopic("counter", "counts"), kgo.ReadCommitted())
	var inLog int64
	for _, v := range log {
		n, _ := strconv.ParseInt(v, 10, 64)
		inLog += n
	}
	if inLog != committed {
		t.Fatalf("committed changelog counts %d inputs, the group committed %d", inLog, committed)
	}
	for _, part := range []string{"0", "1"} {
		if _, err := os.Stat(filepath.Join(dir, "counts-"+part+".db.checkpoint")); err == nil {
			t.Fatal("a checkpoint survived a SIGKILL: the restart would trust a store that may be behind")
		}
	}

	reg := prometheus.NewRegistry()
	cfg := childConfig(r.addr, dir)
	cfg.Registerer = reg
	p, err := NewStateful(cfg, Count())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for r.committedInput("counter") < int64(len(keys)) {
		if r.ctx.Err() != nil {
			t.Fatalf("restarted worker did not finish the input (%d of %d)", r.committedInput("counter"), len(keys))
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantCounts(t, p, want)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p.Close()
	if n := restoredRecords(t, reg); n < float64(len(log)) {
		t.Fatalf("the restart restored %v changelog records, want at least the %d keys committed", n, len(log))
	}
}

// A transaction that aborts after its changelog records were written
// leaves those records in the log, but neither the local store nor a
// store rebuilt from the changelog ever shows them.
func TestAbortedChangelogWritesNeverReachTheStore(t *testing.T) {
	r := newRig(t, 1)
	keys := strings.Split("a b a c a b boom a c", " ")
	all := r.produce(keys...)
	boom := errors.New("boom")
	failing := true
	process := func(ctx context.Context, in *kgo.Record, s Store) ([]*kgo.Record, error) {
		if failing && string(in.Key) == "boom" {
			return nil, boom
		}
		if string(in.Key) == "boom" {
			return nil, nil
		}
		return Count()(ctx, in, s)
	}
	cfg := Config{Brokers: []string{r.addr}, TransactionalID: "c1", Group: "counter",
		InputTopics: []string{"in"}, OutputTopic: "out", MaxPerTxn: 4, Store: "counts", StateDir: t.TempDir()}
	p1, err := NewStateful(cfg, process)
	if err != nil {
		t.Fatal(err)
	}
	if err := p1.Run(r.ctx); !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want the Process error", err)
	}
	committed := r.committedInput("counter")
	if committed >= 6 {
		t.Fatalf("committed input offset %d: the failing transaction committed", committed)
	}
	before := map[string]int64{}
	for _, k := range keys[:committed] {
		before[k]++
	}
	// The aborted transaction wrote changelog records: the uncommitted
	// read shows more than the committed one.
	_, uncommitted := r.readLog(ChangelogTopic("counter", "counts"), kgo.ReadUncommitted())
	_, committedLog := r.readLog(ChangelogTopic("counter", "counts"), kgo.ReadCommitted())
	if uncommitted <= committedLog {
		t.Fatalf("changelog holds %d records read uncommitted, %d read committed: the abort wrote nothing to test", uncommitted, committedLog)
	}
	wantCounts(t, p1, before)
	p1.Close()

	// Rebuild from the changelog alone, in a fresh directory, and finish.
	failing = false
	cfg.StateDir = t.TempDir()
	cfg.TransactionalID = "c2"
	p2, err := NewStateful(cfg, process)
	if err != nil {
		t.Fatal(err)
	}
	delete(all, "boom")
	r.runUntil(p2, "all inputs committed", func() bool {
		if r.committedInput("counter") < int64(len(keys)) {
			return false
		}
		wantCounts(t, p2, all)
		return true
	})
}

// Windowed counts go by event time: records count in their own window
// even out of order, until stream time passes the window's end plus the
// grace period; a later record for that window is dropped.
func TestWindowedCountDropsRecordsAfterTheGracePeriod(t *testing.T) {
	r := newRig(t, 1)
	base := time.UnixMilli(1_700_000_000_000).Truncate(time.Minute)
	at := func(key string, offset time.Duration) *kgo.Record {
		return &kgo.Record{Key: []byte(key), Timestamp: base.Add(offset)}
	}
	rs := []*kgo.Record{
		at("a", 10*time.Second), at("a", 50*time.Second), at("b", 20*time.Second),
		at("a", 70*time.Second),  // next window; stream time 1m10s
		at("a", 30*time.Second),  // out of order, within grace: counts
		at("b", 140*time.Second), // stream time 2m20s: the first window's grace is over
		at("a", 40*time.Second),  // late: dropped
		at("a", 100*time.Second), // second window still open (ends 2m, grace to 2m30s)
		at("c", -5*time.Second),  // the window before base: closed long ago
	}
	if err := r.cl.ProduceSync(r.ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fn, err := WindowedCount(time.Minute, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewStateful(Config{Brokers: []string{r.addr}, TransactionalID: "w", Group: "windows",
		InputTopics: []string{"in"}, OutputTopic: "out", Store: "counts", StateDir: t.TempDir()}, fn)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		string(WindowKey([]byte("a"), base)):                    "3",
		string(WindowKey([]byte("b"), base)):                    "1",
		string(WindowKey([]byte("a"), base.Add(time.Minute))):   "2",
		string(WindowKey([]byte("b"), base.Add(2*time.Minute))): "1",
	}
	r.runUntil(p, "all inputs committed", func() bool { return r.committedInput("windows") == int64(len(rs)) })
	got, _ := r.readLog("out", kgo.ReadCommitted())
	if len(got) != len(want) {
		t.Errorf("windows emitted %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("window %s: %q, want %s", k, got[k], v)
		}
	}
}

// syncBuffer collects a child process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A worker frozen past its session timeout loses its partitions to
// another worker; when it wakes, the transaction it had open cannot
// commit (its generation is gone, KIP-447), and when the group gives it
// partitions again it first restores what the other worker committed.
// Every count, in the changelog and in the output, ends exact.
func TestZombieWorkerNeitherCommitsNorKeepsStaleState(t *testing.T) {
	r := newRig(t, 2)
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i%11)
	}
	want := r.produce(keys...)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"=1", "BROKER="+r.addr, "STATE_DIR="+t.TempDir(), "SESSION_MS=6000")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("zombie worker output:\n%s", out.String())
		}
	}()
	for r.committedInput("counter") < 50 {
		if r.ctx.Err() != nil {
			t.Fatal("the first worker committed nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozenAt := r.committedInput("counter")

	// A second worker takes over once the frozen one's session expires.
	cfg := childConfig(r.addr, t.TempDir())
	cfg.TransactionalID, cfg.ClientOpts = "counter-1", []kgo.Opt{kgo.SessionTimeout(6 * time.Second)}
	p, err := NewStateful(cfg, slowCount())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		p.Close()
	}()
	for r.committedInput("counter") < int64(len(keys)) {
		if r.ctx.Err() != nil {
			t.Fatalf("the second worker did not take over (committed %d of %d)", r.committedInput("counter"), len(keys))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if frozenAt >= int64(len(keys)) {
		t.Fatal("the first worker finished before it was frozen")
	}

	// Wake the zombie, then give the group more to do: the rebalance its
	// return causes hands it partitions again.
	commitsBefore := strings.Count(out.String(), "committed")
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	more := make([]string, 300)
	for i := range more {
		more[i] = "k" + strconv.Itoa(i%7)
	}
	for k, n := range r.produce(more...) {
		want[k] += n
	}
	total := int64(len(keys) + len(more))
	for r.committedInput("counter") < total {
		if r.ctx.Err() != nil {
			t.Fatalf("the workers did not finish (committed %d of %d)", r.committedInput("counter"), total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Count(out.String(), "committed") == commitsBefore {
		t.Fatal("the woken worker committed nothing after it rejoined: the test did not exercise its restore")
	}
	log, _ := r.readLog(ChangelogTopic("counter", "counts"), kgo.ReadCommitted())
	outs, _ := r.readLog("out", kgo.ReadCommitted())
	for k, n := range want {
		w := strconv.FormatInt(n, 10)
		if log[k] != w || outs[k] != w {
			t.Errorf("count of %s: changelog %q, output %q, want %s", k, log[k], outs[k], w)
		}
	}
}
