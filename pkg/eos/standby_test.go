package eos

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// failoverRestore runs two workers over two partitions until the input
// is committed, stops one, and returns how many changelog records the
// other restored to take over its partition; the counts it then serves
// must be exact.
func failoverRestore(t *testing.T, standby bool) float64 {
	t.Helper()
	r := newRig(t, 2)
	keys := make([]string, 1200)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i%300)
	}
	want := r.produce(keys...)
	start := func(id string, reg prometheus.Registerer, commits *atomic.Int64) (*Processor, context.CancelFunc, chan error) {
		cfg := Config{Brokers: []string{r.addr}, TransactionalID: id, Group: "counter", InputTopics: []string{"in"},
			OutputTopic: "out", MaxPerTxn: 10, Store: "counts", StateDir: t.TempDir(), Standby: standby, Registerer: reg,
			OnCommit: func(int) { commits.Add(1) }}
		p, err := NewStateful(cfg, Count())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(r.ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		return p, cancel, done
	}
	var ca, cb atomic.Int64
	a, stopA, doneA := start("counter-a", nil, &ca)
	reg := prometheus.NewRegistry()
	b, stopB, doneB := start("counter-b", reg, &cb)
	defer func() {
		stopB()
		<-doneB
		b.Close()
	}()
	for r.committedInput("counter") < int64(len(keys)) || ca.Load() == 0 || cb.Load() == 0 {
		if r.ctx.Err() != nil {
			t.Fatalf("the two workers did not share and finish the input (%d committed; commits %d and %d)",
				r.committedInput("counter"), ca.Load(), cb.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if standby {
		// The standby copy catches up with the other worker's changelog:
		// every count is in one of b's stores, owned or standby.
		for caughtUp := false; !caughtUp; time.Sleep(20 * time.Millisecond) {
			caughtUp = true
			b.mu.RLock()
			for k, n := range want {
				found := false
				for _, tk := range b.tasks {
					v, err := tk.get([]byte(k))
					found = found || err == nil && string(v) == strconv.FormatInt(n, 10)
				}
				caughtUp = caughtUp && found
			}
			b.mu.RUnlock()
			if r.ctx.Err() != nil {
				t.Fatal("the standby copy did not catch up with the changelog")
			}
		}
	}
	before := restoredRecords(t, reg)
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	a.Close() // leaves the group: b takes both partitions
	for {
		all := true
		for k, n := range want {
			got, code := query(t, b, "counts", k)
			all = all && code == 200 && got == strconv.FormatInt(n, 10)
		}
		if all {
			break
		}
		if r.ctx.Err() != nil {
			wantCounts(t, b, want)
			t.Fatal("the remaining worker did not serve every count after the failover")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return restoredRecords(t, reg) - before
}

// With Config.Standby, the worker that takes over a failed worker's
// partition has kept a warm copy of its store and restores (almost)
// nothing; without it, it restores the partition's changelog from the
// start. Both serve exact counts after the failover.
func TestStandbyFailoverRestoresLessThanColdRestore(t *testing.T) {
	cold := failoverRestore(t, false)
	warm := failoverRestore(t, true)
	t.Logf("changelog records restored at failover: cold %v, with a standby %v", cold, warm)
	if cold < 100 {
		t.Fatalf("the cold failover restored %v records: the test did not exercise a restore", cold)
	}
	if warm >= cold {
		t.Fatalf("with a standby the failover restored %v records, no fewer than the cold %v", warm, cold)
	}
}
