package eos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
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
	if os.Getenv("WORKER_KIND") == "repartition" {
		return runRepartitionWorker()
	}
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
		if _, err := os.Stat(filepath.Join(dir, "counter", "counts-"+part+".db.checkpoint")); err == nil {
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
