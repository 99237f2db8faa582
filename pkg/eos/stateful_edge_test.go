package eos

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/weir"
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

// A state directory whose checkpoint belongs to an earlier incarnation of
// the changelog (the application was reset: its changelog deleted and
// created again, as Kafka's application reset tool does) must not be
// taken as a prefix of the new changelog, even when the new changelog
// has grown past the checkpoint's offset. The store detects a recreated
// changelog only when it is shorter than the checkpoint; here it is
// longer, so the restore starts in the middle of the new changelog on top
// of the old state. Correct outcome: the restarted worker's store equals
// the new changelog: no key of the old run, every key of the new one.
func TestCheckpointOfADeletedChangelogIsNotReused(t *testing.T) {
	r := newRig(t, 1)
	dirA := t.TempDir()
	cfg := Config{Brokers: []string{r.addr}, TransactionalID: "a", Group: "counter",
		InputTopics: []string{"in"}, OutputTopic: "out", Store: "counts", StateDir: dirA}
	old := r.produce("old-0", "old-1", "old-2", "old-3", "old-4")
	a, err := NewStateful(cfg, Count())
	if err != nil {
		t.Fatal(err)
	}
	r.runUntil(a, "the old run committed", func() bool { return r.committedInput("counter") == 5 })

	// Reset: the changelog is deleted; the application starts over on a
	// new input, on another machine.
	changelog := ChangelogTopic("counter", "counts")
	if resp, err := r.adm.DeleteTopics(r.ctx, changelog); err != nil || resp[changelog].Err != nil {
		t.Fatalf("deleting the changelog: %v %v", err, resp[changelog].Err)
	}
	if _, err := r.adm.CreateTopic(r.ctx, 1, 1, nil, "in2"); err != nil {
		t.Fatal(err)
	}
	var newKeys []string
	for i := range 20 {
		newKeys = append(newKeys, fmt.Sprintf("new-%d", i))
	}
	recs := make([]*kgo.Record, len(newKeys))
	for i, k := range newKeys {
		recs[i] = &kgo.Record{Topic: "in2", Key: []byte(k), Value: []byte("x")}
	}
	if err := r.cl.ProduceSync(r.ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	committedIn2 := func() bool {
		offs, err := r.adm.FetchOffsets(r.ctx, "counter")
		if err != nil {
			return false
		}
		o, ok := offs.Lookup("in2", 0)
		return ok && o.At == int64(len(newKeys))
	}
	cfgB := cfg
	cfgB.TransactionalID, cfgB.StateDir, cfgB.InputTopics = "b", t.TempDir(), []string{"in2"}
	b, err := NewStateful(cfgB, Count())
	if err != nil {
		t.Fatal(err)
	}
	r.runUntil(b, "the new run committed", committedIn2)

	// The first machine comes back with its old state directory.
	cfgA := cfg
	cfgA.InputTopics = []string{"in2"}
	a2, err := NewStateful(cfgA, Count())
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, r.ctx, a2)
	defer stop()
	served := func() bool { _, code := query(t, a2, "counts", "new-19"); return code == 200 }
	if !waitFor(r.ctx, 20*time.Second, served) {
		t.Fatal("the restarted worker never served its store")
	}
	for k := range old {
		if got, code := query(t, a2, "counts", k); code != 404 {
			t.Errorf("key %s of the deleted changelog: HTTP %d %q, want 404", k, code, got)
		}
	}
	for _, k := range newKeys {
		if got, code := query(t, a2, "counts", k); code != 200 || got != "1" {
			t.Errorf("key %s of the new changelog: HTTP %d %q, want 1", k, code, got)
		}
	}
}

// A sum that would leave the int64 range is bad input: Sum reports an
// error, aborting the transaction, instead of committing a wrapped-around
// value to the store, the changelog and the output. Correct outcome: Run
// returns an error and neither the store nor the committed changelog or
// output ever holds a negative sum of positive inputs.
func TestSumOverflowIsAnErrorNotAWrappedValue(t *testing.T) {
	r := newRig(t, 1)
	recs := []*kgo.Record{
		{Key: []byte("k"), Value: []byte(strconv.FormatInt(math.MaxInt64, 10))},
		{Key: []byte("k"), Value: []byte("1")},
	}
	if err := r.cl.ProduceSync(r.ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sum := Sum(func(in *kgo.Record) (int64, error) { return strconv.ParseInt(string(in.Value), 10, 64) })
	p, err := NewStateful(Config{Brokers: []string{r.addr}, TransactionalID: "s", Group: "summer",
		InputTopics: []string{"in"}, OutputTopic: "out", Store: "sums", StateDir: t.TempDir()}, sum)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var runErr error
	stopped := waitFor(r.ctx, 20*time.Second, func() bool {
		select {
		case runErr = <-done:
			return true
		default:
			return r.committedInput("summer") == 2
		}
	})
	if !stopped {
		t.Fatal("the processor neither failed nor committed both inputs")
	}
	if runErr == nil {
		// Still running: it committed both inputs.
		if v, code := query(t, p, "sums", "k"); code == 200 && strings.HasPrefix(v, "-") {
			t.Errorf("store sum of MaxInt64 and 1: %s", v)
		}
		cancel()
		runErr = <-done
	}
	cancel()
	p.Close()
	if runErr == nil {
		t.Error("Run returned no error for a sum past MaxInt64")
	}
	for _, topic := range []string{"out", ChangelogTopic("summer", "sums")} {
		got, _ := r.readLog(topic, kgo.ReadCommitted())
		if strings.HasPrefix(got["k"], "-") {
			t.Errorf("committed %s holds the sum %s for positive inputs", topic, got["k"])
		}
	}
}

// newRigWith is newRig on a broker with extra settings.
func newRigWith(t *testing.T, partitions int32, settings map[string]string) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	all := map[string]string{"group.initial.rebalance.delay.ms": "0"}
	for k, v := range settings {
		all[k] = v
	}
	b, err := weir.Start(ctx, weir.Config{DataDir: t.TempDir(), Settings: all})
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

// A changelog that someone else created without log compaction
// (cleanup.policy=delete, a short retention.ms) loses the store's state
// to retention; a processor must refuse it, as Kafka Streams validates
// the configuration of the internal topics it finds, rather than accept
// it because the partition count matches. Correct outcome: either Run
// fails at start naming the cleanup policy, or a worker that restores
// from that changelog later still holds every committed count.
func TestChangelogWithoutCompactionIsRefused(t *testing.T) {
	r := newRigWith(t, 1, map[string]string{"log.retention.check.interval.ms": "100"})
	changelog := ChangelogTopic("counter", "counts")
	if _, err := r.adm.CreateTopic(r.ctx, 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("1000"),
	}, changelog); err != nil {
		t.Fatal(err)
	}
	want := r.produce("a", "b", "a", "c")
	cfg := Config{Brokers: []string{r.addr}, TransactionalID: "a", Group: "counter",
		InputTopics: []string{"in"}, OutputTopic: "out", Store: "counts", StateDir: t.TempDir()}
	a, err := NewStateful(cfg, Count())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var runErr error
	if !waitFor(r.ctx, 20*time.Second, func() bool {
		select {
		case runErr = <-done:
			return true
		default:
			return r.committedInput("counter") == 4
		}
	}) {
		t.Fatal("the processor neither refused the changelog nor committed the inputs")
	}
	if runErr != nil {
		cancel()
		a.Close()
		if !strings.Contains(runErr.Error(), "cleanup.policy") {
			t.Fatalf("Run: %v, want a refusal naming cleanup.policy", runErr)
		}
		return
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.Close()

	// Retention empties the changelog; a worker on another machine then
	// restores the store from it.
	if !waitFor(r.ctx, 20*time.Second, func() bool {
		starts, err := r.adm.ListStartOffsets(r.ctx, changelog)
		if err != nil {
			return false
		}
		o, ok := starts.Lookup(changelog, 0)
		return ok && o.Offset > 0
	}) {
		t.Fatal("retention never deleted changelog records: nothing to show")
	}
	cfg.TransactionalID, cfg.StateDir = "b", t.TempDir()
	b, err := NewStateful(cfg, Count())
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, r.ctx, b)
	defer stop()
	served := func() bool {
		for k, n := range want {
			if got, code := query(t, b, "counts", k); code != 200 || got != fmt.Sprint(n) {
				return false
			}
		}
		return true
	}
	if !waitFor(r.ctx, 15*time.Second, served) {
		for k, n := range want {
			got, code := query(t, b, "counts", k)
			t.Errorf("count of %s restored from a changelog without compaction: HTTP %d %q, want %d", k, code, got, n)
		}
	}
}

// Two applications (consumer groups, so changelogs of their own) whose
// stores share a name keep separate local stores even in one state
// directory, as Kafka Streams keeps each application's state under its
// application id: the store file is named by the store and the partition
// only, so the second application opens the first one's file (it waits
// for bbolt's lock and fails while both run). Correct outcome: both
// applications run at once over the same state directory and each
// answers its own counts.
func TestApplicationsSharingAStateDirectoryKeepSeparateStores(t *testing.T) {
	r := newRig(t, 1)
	want := r.produce("a", "b", "a")
	dir := t.TempDir()
	var procs []*Processor
	for _, g := range []string{"app1", "app2"} {
		p, err := NewStateful(Config{Brokers: []string{r.addr}, TransactionalID: g, Group: g,
			InputTopics: []string{"in"}, OutputTopic: "out", Store: "counts", StateDir: dir}, Count())
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	type result struct {
		app string
		err error
	}
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	done := make(chan result, len(procs))
	for i, p := range procs {
		app := []string{"app1", "app2"}[i]
		go func() { done <- result{app, p.Run(ctx)} }()
	}
	allServed := func() bool {
		for _, p := range procs {
			for k, n := range want {
				if got, code := query(t, p, "counts", k); code != 200 || got != fmt.Sprint(n) {
					return false
				}
			}
		}
		return true
	}
	ok := waitFor(r.ctx, 20*time.Second, func() bool {
		select {
		case res := <-done:
			t.Errorf("%s stopped: %v", res.app, res.err)
			done <- res
			return true
		default:
			return allServed()
		}
	})
	if !ok {
		t.Error("the two applications did not both answer their counts")
	}
	cancel()
	for range procs {
		<-done
	}
	for _, p := range procs {
		p.Close()
	}
}

// Input topics of a stateful processor share one store per partition
// number (a task), so partition p of every input topic must be owned by
// the same worker, as Kafka Streams assigns co-partitioned topics as one
// task. The group is balanced partition by partition, so with two input
// topics and two workers each worker gets partition 0 of one topic: both
// then update store 0 from their own copies and write changelog
// partition 0 side by side, and each overwrites the other's counts.
// Correct outcome: after 5 records of key k in each topic, the committed
// output, the committed changelog and the owning worker's query all say
// 10.
func TestCoPartitionedInputsShareOneOwner(t *testing.T) {
	r := newRig(t, 1)
	if _, err := r.adm.CreateTopic(r.ctx, 1, 1, nil, "in2"); err != nil {
		t.Fatal(err)
	}
	var procs []*Processor
	for _, id := range []string{"a", "b"} {
		p, err := NewStateful(Config{Brokers: []string{r.addr}, TransactionalID: id, Group: "counter",
			InputTopics: []string{"in", "in2"}, OutputTopic: "out", Store: "counts", StateDir: t.TempDir()}, Count())
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
		stop := startRun(t, r.ctx, p)
		defer stop()
	}
	// Both members are in the group before any input arrives.
	if !waitFor(r.ctx, 20*time.Second, func() bool {
		gs, err := r.adm.DescribeGroups(r.ctx, "counter")
		if err != nil {
			return false
		}
		g := gs["counter"]
		return g.State == "Stable" && len(g.Members) == 2
	}) {
		t.Fatal("the two workers never formed a stable group")
	}
	var recs []*kgo.Record
	for _, topic := range []string{"in", "in2"} {
		for range 5 {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("x")})
		}
	}
	if err := r.cl.ProduceSync(r.ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	committed := func() bool {
		offs, err := r.adm.FetchOffsets(r.ctx, "counter")
		if err != nil {
			return false
		}
		a, okA := offs.Lookup("in", 0)
		b, okB := offs.Lookup("in2", 0)
		return okA && okB && a.At == 5 && b.At == 5
	}
	if !waitFor(r.ctx, 20*time.Second, committed) {
		t.Fatal("the inputs were not committed")
	}
	for _, topic := range []string{"out", ChangelogTopic("counter", "counts")} {
		if got, _ := r.readLog(topic, kgo.ReadCommitted()); got["k"] != "10" {
			t.Errorf("committed %s: count of k %q, want 10", topic, got["k"])
		}
	}
	for i, p := range procs {
		if got, code := query(t, p, "counts", "k"); code == 200 && got != "10" {
			t.Errorf("worker %d answers the count of k with %s, want 10", i, got)
		}
	}
}

// A clean stop — Run's context cancelled while a transaction is under
// way — returns nil, as Run's doc promises, and aborts the transaction
// rather than leaving it open: an open transaction holds back the last
// stable offset of the output, so read_committed consumers of the output
// and whoever takes the partitions over would wait for the transaction
// timeout. Correct outcome: Run returns nil, and after a second worker
// commits every input the output's last stable offset reaches its end
// within seconds, far less than the 60 s transaction timeout.
func TestStopInsideATransactionAbortsItAndReturnsNil(t *testing.T) {
	r := newRig(t, 1)
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i%3)
	}
	want := r.produce(keys...)
	var calls atomic.Int32
	count := Count()
	slow := func(ctx context.Context, in *kgo.Record, s Store) ([]*kgo.Record, error) {
		calls.Add(1)
		time.Sleep(100 * time.Millisecond)
		return count(ctx, in, s)
	}
	cfg := Config{Brokers: []string{r.addr}, TransactionalID: "a", Group: "counter",
		InputTopics: []string{"in"}, OutputTopic: "out", MaxPerTxn: 50, Store: "counts", StateDir: t.TempDir()}
	a, err := NewStateful(cfg, slow)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	if !waitFor(r.ctx, 20*time.Second, func() bool { return calls.Load() >= 3 }) {
		t.Fatal("the worker processed nothing")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after its context was cancelled mid-transaction: %v, want nil", err)
	}
	a.Close()
	if n := r.committedInput("counter"); n != 0 {
		t.Fatalf("%d inputs committed: the stop did not land inside the first transaction", n)
	}

	cfg.TransactionalID, cfg.StateDir = "b", t.TempDir()
	b, err := NewStateful(cfg, Count())
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, r.ctx, b)
	defer stop()
	if !waitFor(r.ctx, 20*time.Second, func() bool { return r.committedInput("counter") == int64(len(keys)) }) {
		t.Fatal("the second worker did not commit every input")
	}
	wantCounts(t, b, want)
	stable := func() bool {
		ends, err1 := r.adm.ListEndOffsets(r.ctx, "out")
		lso, err2 := r.adm.ListCommittedOffsets(r.ctx, "out")
		if err1 != nil || err2 != nil {
			return false
		}
		e, _ := ends.Lookup("out", 0)
		l, _ := lso.Lookup("out", 0)
		return e.Offset > 0 && l.Offset == e.Offset
	}
	if !waitFor(r.ctx, 15*time.Second, stable) {
		t.Error("the output's last stable offset is held back by the stopped worker's open transaction")
	}
}

// A worker answers queries only from partitions it owns (QueryHandler's
// doc). The group session calls the processor's revoke callback only for
// the first revocation between two transactions, so an idle worker that
// loses partitions in two rebalances in a row keeps serving the second
// one from its stale copy while another worker updates it. Correct
// outcome: after each key gets one more record, every worker that answers
// a key answers its new count; none answers an old one.
func TestWorkerStopsAnsweringEveryPartitionItLoses(t *testing.T) {
	r := newRig(t, 3)
	keys := make([]string, 30)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	r.produce(keys...)
	cfg := func(id string) Config {
		return Config{Brokers: []string{r.addr}, TransactionalID: id, Group: "counter",
			InputTopics: []string{"in"}, OutputTopic: "out", Store: "counts", StateDir: t.TempDir()}
	}
	var procs []*Processor
	start := func(id string) *Processor {
		p, err := NewStateful(cfg(id), Count())
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
		stop := startRun(t, r.ctx, p)
		t.Cleanup(stop)
		return p
	}
	serves := func(p *Processor) bool {
		for _, k := range keys {
			if _, code := query(t, p, "counts", k); code == 200 {
				return true
			}
		}
		return false
	}
	a := start("a")
	if !waitFor(r.ctx, 20*time.Second, func() bool {
		if r.committedInput("counter") != int64(len(keys)) {
			return false
		}
		for _, k := range keys {
			if _, code := query(t, a, "counts", k); code != 200 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the first worker did not count and serve every key")
	}
	// Two more workers join one after the other while the first is idle.
	for _, id := range []string{"b", "c"} {
		p := start(id)
		if !waitFor(r.ctx, 20*time.Second, func() bool { return serves(p) }) {
			t.Fatalf("worker %s never took a partition", id)
		}
	}
	r.produce(keys...)
	if !waitFor(r.ctx, 20*time.Second, func() bool { return r.committedInput("counter") == int64(2*len(keys)) }) {
		t.Fatal("the new inputs were not committed")
	}
	// Each key's owner answers 2 once it has applied the commit; give the
	// owners time, then look for any worker that still answers 1.
	waitFor(r.ctx, 10*time.Second, func() bool {
		for _, k := range keys {
			ok := false
			for _, p := range procs {
				if got, code := query(t, p, "counts", k); code == 200 && got == "2" {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	})
	for _, k := range keys {
		for i, p := range procs {
			if got, code := query(t, p, "counts", k); code == 200 && got != "2" {
				t.Errorf("worker %s answers %s = %s, a partition it no longer owns: the count is 2", []string{"a", "b", "c"}[i], k, got)
			}
		}
	}
}
