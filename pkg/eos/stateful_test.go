package eos

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

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
		if _, err := os.Stat(filepath.Join(dir, "counter", "counts-"+part+".db.checkpoint")); err != nil {
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
