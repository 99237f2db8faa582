package eos

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// startRun runs p in the background until the returned stop is called;
// stop waits for Run and closes p cleanly.
func startRun(t *testing.T, ctx context.Context, p *Processor) (stop func()) {
	t.Helper()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		p.Close()
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// A partition that moves to another worker and back again, with no new
// input meanwhile, is restored by its owner and answers interactive
// queries, as a newly assigned partition does. The owner's store of the
// returning partition is already open, so it is only flagged for a
// restore; the restore must not wait for the partition's next input
// record. Correct outcome: every key answers 200 with its count from the
// worker that owns all partitions again.
func TestReturningPartitionAnswersQueriesWithoutNewInput(t *testing.T) {
	r := newRig(t, 2)
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	want := r.produce(keys...)
	cfg := func(id string) Config {
		return Config{Brokers: []string{r.addr}, TransactionalID: id, Group: "counter",
			InputTopics: []string{"in"}, OutputTopic: "out", Store: "counts", StateDir: t.TempDir()}
	}
	a, err := NewStateful(cfg("a"), Count())
	if err != nil {
		t.Fatal(err)
	}
	stopA := startRun(t, r.ctx, a)
	defer stopA()
	if !waitFor(r.ctx, 20*time.Second, func() bool { return r.committedInput("counter") == int64(len(keys)) }) {
		t.Fatal("the first worker did not commit every input")
	}
	allServed := func(p *Processor) bool {
		for k, n := range want {
			if got, code := query(t, p, "counts", k); code != 200 || got != fmt.Sprint(n) {
				return false
			}
		}
		return true
	}
	if !waitFor(r.ctx, 10*time.Second, func() bool { return allServed(a) }) {
		t.Fatal("the only worker does not answer every key")
	}

	// A second worker takes a partition, then leaves cleanly.
	b, err := NewStateful(cfg("b"), Count())
	if err != nil {
		t.Fatal(err)
	}
	stopB := startRun(t, r.ctx, b)
	servedByB := func() bool {
		for _, k := range keys {
			if _, code := query(t, b, "counts", k); code == 200 {
				return true
			}
		}
		return false
	}
	if !waitFor(r.ctx, 20*time.Second, servedByB) {
		t.Fatal("the second worker never took a partition")
	}
	stopB()

	if !waitFor(r.ctx, 20*time.Second, func() bool { return allServed(a) }) {
		for _, k := range keys {
			if got, code := query(t, a, "counts", k); code != 200 {
				t.Errorf("key %s: HTTP %d %q from the worker that owns every partition again", k, code, got)
			}
		}
	}
}
