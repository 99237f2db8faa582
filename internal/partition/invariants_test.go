package partition

// Tests of the partition layer's invariants under the interleavings and
// crashes most likely to break them, with the real log, partition and
// producer state on logtest.MemFS.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
	"github.com/weir-broker/weir/internal/producer"
)

// advOpen opens t-0 in /t on fs with manual flushing (the high watermark
// moves only on Sync), so the test decides every interleaving.
func advOpen(t *testing.T, fs *logtest.MemFS, opts Options) *Partition {
	t.Helper()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	p, err := OpenWith("t", 0, "/t", cfg, 0, []int32{0}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// advAppend appends one batch of values without waiting for durability.
func advAppend(t *testing.T, p *Partition, spec batch.Spec, values ...string) int64 {
	t.Helper()
	var recs []batch.Record
	for _, v := range values {
		recs = append(recs, batch.Record{Value: []byte(v)})
	}
	b := batch.Build(spec, recs)
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	base, dup, err := p.Append(b, h, 0)
	if err != nil || dup != nil {
		t.Fatalf("append %v: %v %+v", values, err, dup)
	}
	return base
}

func advSync(t *testing.T, p *Partition) {
	t.Helper()
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
}

// readCommittedValues filters record batches read from offset from as a
// Kafka read_committed client does (the Java consumer's
// consumeAbortedTransactionsUpTo / isBatchAborted, franz-go alike): a
// producer's transactional batches are dropped from the first offset of
// an aborted transaction the broker listed until that producer's ABORT
// marker; records below from are dropped.
func readCommittedValues(t *testing.T, data []byte, from int64, aborted []abortedTxn) []string {
	t.Helper()
	sort.Slice(aborted, func(i, j int) bool { return aborted[i].first < aborted[j].first })
	skipping := map[int64]bool{}
	var out []string
	for len(data) > 0 {
		h, err := batch.ParseHeader(data)
		if err != nil {
			t.Fatal(err)
		}
		raw := data[:h.Size()]
		data = data[h.Size():]
		for len(aborted) > 0 && aborted[0].first <= h.BaseOffset {
			skipping[aborted[0].pid] = true
			aborted = aborted[1:]
		}
		if h.Control() {
			commit, err := batch.IsCommitMarker(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !commit {
				delete(skipping, h.ProducerID)
			}
			continue
		}
		if h.Transactional() && skipping[h.ProducerID] {
			continue
		}
		recs, err := batch.Records(raw)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if h.BaseOffset+int64(i) >= from {
				out = append(out, string(r.Value))
			}
		}
	}
	return out
}

type abortedTxn struct{ pid, first int64 }

func abortedOf(p *Partition, from, to int64) []abortedTxn {
	var out []abortedTxn
	for _, a := range p.AbortedTransactions(from, to) {
		out = append(out, abortedTxn{a.ProducerID, a.FirstOffset})
	}
	return out
}

// A read_committed fetch never hands out aborted records when
// DeleteRecords completes while it reads: DeleteRecords drops the aborted
// transactions below the new log start (State.TruncateHead), so a fetch
// whose batches were read before that and whose aborted list was taken
// after it would have nothing to filter them by. ReadCommittedInto
// answers such a read OFFSET_OUT_OF_RANGE instead.
func TestReadCommittedFetchRacingDeleteRecordsNeverExposesAbortedRecords(t *testing.T) {
	fs := logtest.NewMemFS()
	p := advOpen(t, fs, Options{ManualFlush: true})
	defer p.Close()
	advAppend(t, p, txnSpec(7, 0), "aborted")                 // 0
	if _, err := p.AppendMarker(7, 0, false, 0); err != nil { // 1: ABORT
		t.Fatal(err)
	}
	advAppend(t, p, plain, "ok") // 2
	advSync(t, p)
	if lso := p.LastStableOffset(); lso != 3 {
		t.Fatalf("lso %d, want 3", lso)
	}

	// Hold the fetch's first file read until DeleteRecords is done.
	var armed atomic.Bool
	blocked, release := make(chan struct{}), make(chan struct{})
	fs.SetFault(func(op logtest.Op, path string) error {
		if op == logtest.OpRead && strings.HasSuffix(path, ".log") && armed.CompareAndSwap(true, false) {
			close(blocked)
			<-release
		}
		return nil
	})
	type fetched struct {
		data    []byte
		aborted []abortedTxn
		err     error
	}
	done := make(chan fetched)
	armed.Store(true)
	go func() { // what readTargets does for a read_committed fetch at offset 0
		lso := p.LastStableOffset()
		data, aborted, err := p.ReadCommittedInto(nil, 0, lso, 1<<20)
		var out []abortedTxn
		for _, a := range aborted {
			out = append(out, abortedTxn{a.ProducerID, a.FirstOffset})
		}
		done <- fetched{data, out, err}
	}()
	<-blocked
	if _, err := p.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	close(release)
	f := <-done
	if errors.Is(f.err, wlog.ErrOffsetOutOfRange) {
		return // the fetch offset is below the log start now: the client resets, as from any purged offset
	}
	if f.err != nil {
		t.Fatal(f.err)
	}
	got := readCommittedValues(t, f.data, 0, f.aborted)
	for _, v := range got {
		if v == "aborted" {
			t.Fatalf("read_committed fetch at 0 racing DeleteRecords(2) returned %v with aborted transactions %v: "+
				"the aborted record of producer 7 is delivered as committed", got, f.aborted)
		}
	}
}

// The same without the file-system hook: retention between the read and
// the aborted list, which ReadCommittedInto makes one step.
func TestReadCommittedFetchRacingRetentionNeverExposesAbortedRecords(t *testing.T) {
	fs := logtest.NewMemFS()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	cfg.SegmentBytes = 200
	p, err := OpenWith("t", 0, "/t", cfg, 0, []int32{0}, Options{ManualFlush: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	advAppend(t, p, txnSpec(7, 0), "aborted") // 0
	if _, err := p.AppendMarker(7, 0, false, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		advAppend(t, p, plain, strings.Repeat("x", 40)+string(rune('a'+i)))
	}
	advSync(t, p)
	lso := p.LastStableOffset()
	cfg.RetentionBytes = 0
	var retained atomic.Bool
	fs.SetFault(func(op logtest.Op, path string) error {
		if op == logtest.OpRead && strings.HasSuffix(path, ".log") && retained.CompareAndSwap(false, true) {
			p.SetConfig(cfg)
			if n, err := p.EnforceRetention(); err != nil || n == 0 {
				t.Errorf("retention deleted %d segments: %v", n, err)
			}
		}
		return nil
	})
	data, abortedKmsg, err := p.ReadCommittedInto(nil, 0, lso, 1<<20)
	if errors.Is(err, wlog.ErrOffsetOutOfRange) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var aborted []abortedTxn
	for _, a := range abortedKmsg {
		aborted = append(aborted, abortedTxn{a.ProducerID, a.FirstOffset})
	}
	got := readCommittedValues(t, data, 0, aborted)
	if len(got) > 0 && got[0] == "aborted" {
		t.Fatalf("read_committed read of [0, %d) with retention (log start now %d) between the read and AbortedTransactions: "+
			"records %v, aborted transactions %v: the aborted record is delivered", lso, p.LogStartOffset(), got, aborted)
	}
}

// The LSO never moves backwards, also across a power loss that takes a
// marker not yet durable: a transaction stays in the first unstable
// offset until the high watermark passes its marker, so readers are never
// shown data whose transaction a crash could reopen.
func TestLastStableOffsetHoldsUntilTheMarkerIsDurable(t *testing.T) {
	fs := logtest.NewMemFS()
	p := advOpen(t, fs, Options{ManualFlush: true})
	advAppend(t, p, plain, "a")            // 0
	advAppend(t, p, txnSpec(7, 0), "txn7") // 1
	advSync(t, p)                          // HW 2
	if lso := p.LastStableOffset(); lso != 1 {
		t.Fatalf("lso %d, want 1", lso)
	}
	if _, err := p.AppendMarker(7, 0, true, 0); err != nil { // 2, not yet fsynced
		t.Fatal(err)
	}
	before := p.LastStableOffset()
	data, err := p.Read(p.LogStartOffset(), before, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	seen := readCommittedValues(t, data, 0, abortedOf(p, 0, before))
	crashed := fs.Crash(nil) // power loss: the unsynced marker is lost
	p.Close()

	q := advOpen(t, crashed, Options{ManualFlush: true})
	defer q.Close()
	after := q.LastStableOffset()
	if after < before {
		t.Fatalf("last stable offset %d before the power loss (read_committed served %v, HW %d, marker at 2 not durable), "+
			"%d after it: the LSO moved backwards; producer 7's transaction is open again: %+v",
			before, seen, 2, after, q.Producers())
	}
}

// Two producer snapshots of the same offset share one temporary file
// (WriteFileDurably: <name>.tmp): the flusher's due snapshot and the one
// DeleteRecords (or retention) writes after moving the log start. Written
// at once, the first rename took the file and the other failed with "no
// such file"; when the loser was the flusher, the flush error was sticky
// and nothing appended afterwards ever became durable. Snapshots are now
// written one at a time: DeleteRecords, started while the flusher is in
// the middle of its snapshot, waits for it, and both succeed.
func TestDeleteRecordsRacingTheFlushersSnapshotLeavesTheFlusherRunning(t *testing.T) {
	fs := logtest.NewMemFS()
	var armed atomic.Bool
	blocked, release := make(chan struct{}), make(chan struct{})
	fs.SetFault(func(op logtest.Op, path string) error {
		if op == logtest.OpRename && strings.HasSuffix(path, ".snapshot") && armed.CompareAndSwap(true, false) {
			close(blocked) // the flusher, about to rename its snapshot into place
			<-release
		}
		return nil
	})
	p := advOpen(t, fs, Options{SnapshotIntervalBytes: 1}) // a running flusher; a snapshot every round
	defer p.Close()
	armed.Store(true)
	advAppend(t, p, plain, "a") // 0: the flusher syncs (HW 1) and snapshots at 1
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the flusher never wrote its snapshot")
	}
	deleted := make(chan error)
	go func() { // writes a snapshot at 1 too, after the flusher's
		_, err := p.DeleteRecordsBefore(1)
		deleted <- err
	}()
	close(release)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}

	end := advAppend(t, p, plain, "b") + 1
	select {
	case err := <-p.WaitDurable(end):
		if err != nil {
			t.Fatalf("append after a DeleteRecords that raced the flusher's snapshot: WaitDurable: %v (HW %d stays below %d for good)",
				err, p.HighWatermark(), end)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("append never became durable (HW %d)", p.HighWatermark())
	}
}

// advKeyed appends one batch of key=value records without waiting.
func advKeyed(t *testing.T, p *Partition, spec batch.Spec, kvs ...string) int64 {
	t.Helper()
	var recs []batch.Record
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		recs = append(recs, batch.Record{Key: []byte(k), Value: []byte(kv + "@" + v)})
	}
	b := batch.Build(spec, recs)
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	base, dup, err := p.Append(b, h, 0)
	if err != nil || dup != nil {
		t.Fatalf("append %v: %v %+v", kvs, err, dup)
	}
	return base
}

// committedView is what a read_committed consumer reads from the log
// start to the LSO.
func committedView(t *testing.T, p *Partition) []string {
	t.Helper()
	start, lso := p.LogStartOffset(), p.LastStableOffset()
	var out []string
	for from := start; from < lso; {
		data, err := p.Read(from, lso, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			break
		}
		out = append(out, readCommittedValues(t, data, from, abortedOf(p, from, lso))...)
		var last int64
		for d := data; len(d) > 0; {
			h, _ := batch.ParseHeader(d)
			last = h.NextOffset()
			d = d[h.Size():]
		}
		from = last
	}
	return out
}

// replayed opens a copy of fs without producer snapshots and returns the
// producer state a replay of the log from its start yields.
func replayed(t *testing.T, fs *logtest.MemFS) []string {
	t.Helper()
	c := fs.Clone()
	for _, name := range c.List("/t", ".snapshot") {
		if err := c.Remove("/t/" + name); err != nil {
			t.Fatal(err)
		}
	}
	q := advOpen(t, c, Options{ManualFlush: true})
	defer q.Close()
	return producersOf(q)
}

func producersOf(p *Partition) []string {
	var out []string
	for _, e := range p.Producers() {
		e.LastUpdateMs = 0
		out = append(out, strings.ReplaceAll(strings.TrimSpace(strings.ReplaceAll(fmtEntry(e), "\n", " ")), "  ", " "))
	}
	return out
}

// Compaction of committed, aborted and open transactions and of an
// idempotent producer, with DeleteRecords inside a batch, then restarts
// (clean, SIGKILL, power loss): the read_committed view holds no aborted
// or open record before or after, loses no latest value, and the
// recovered producer state equals a replay.
func TestCompactionWithTransactionsAndRestartsKeepsReadCommittedAndProducerState(t *testing.T) {
	fs := logtest.NewMemFS()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	cfg.SegmentBytes = 300
	open := func(fs *logtest.MemFS) *Partition {
		c := cfg
		c.FS = fs
		p, err := OpenWith("t", 0, "/t", c, 0, []int32{0}, Options{ManualFlush: true, SnapshotIntervalBytes: 200})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open(fs)
	idem := func(seq int32) batch.Spec { return batch.Spec{ProducerID: 3, ProducerEpoch: 0, BaseSequence: seq} }
	advKeyed(t, p, plain, "k1=a", "k2=a")                     // 0-1
	advKeyed(t, p, txnSpec(7, 0), "k1=ab7", "k3=ab7")         // 2-3 aborted
	advKeyed(t, p, idem(0), "k2=i0")                          // 4
	advKeyed(t, p, txnSpec(8, 0), "k1=c8", "k2=c8")           // 5-6 committed
	if _, err := p.AppendMarker(7, 0, false, 0); err != nil { // 7
		t.Fatal(err)
	}
	advKeyed(t, p, txnSpec(7, 2), "k3=ab7b") // 8: 7 opens its next transaction (aborted below)
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendMarker(8, 0, true, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendMarker(7, 0, false, 0); err != nil {
		t.Fatal(err)
	}
	advKeyed(t, p, idem(1), "k1=i1", "k4=i1")
	advKeyed(t, p, txnSpec(9, 0), "k4=open9") // open
	for i := range 6 {
		advKeyed(t, p, plain, "k5=p"+string(rune('0'+i)))
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeleteRecordsBefore(3); err != nil { // inside 7's first batch
		t.Fatal(err)
	}
	before := committedView(t, p)
	if st, err := p.Compact(time.Now(), 0); err != nil || st.RecordsRemoved == 0 {
		t.Fatalf("compaction removed nothing: %+v %v", st, err)
	} else {
		t.Logf("compaction: %+v", st)
	}
	after := committedView(t, p)
	t.Logf("read_committed before compaction %v, after %v", before, after)
	check := func(stage string, got []string) {
		t.Helper()
		for _, v := range got {
			if strings.Contains(v, "ab7") || strings.Contains(v, "open9") {
				t.Fatalf("%s: read_committed view %v holds an aborted or open record", stage, got)
			}
		}
		for _, v := range before {
			if v == "k5=p5@p5" || v == "k1=i1@i1" || v == "k2=c8@c8" {
				if !slicesContains(got, v) {
					t.Fatalf("%s: read_committed view %v lost the latest value %s (before: %v)", stage, got, v, before)
				}
			}
		}
	}
	check("before compaction", before)
	check("after compaction", after)
	live := producersOf(p)
	killed, lost := fs.Clone(), fs.Crash(nil)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]*logtest.MemFS{"clean restart": fs, "SIGKILL": killed, "power loss": lost} {
		q := open(f)
		check(name, committedView(t, q))
		if got, want := producersOf(q), replayed(t, f); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: recovered producers\n%v\nreplay\n%v\n(live %v)", name, got, want, live)
		}
		q.Close()
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func fmtEntry(e any) string { return fmt.Sprintf("%+v", e) }

// Invariant 4 with expiration. ExpireProducers forgets an idle producer
// on purpose (producer.id.expiration.ms), and the snapshot a clean Close
// writes no longer holds it, while a replay of the log (which counts
// replayed producers as seen at the restart) remembers it again. The
// recovered state may therefore hold fewer producers than a replay, never
// other ones: every producer it holds, it holds exactly as the replay
// does, and a SIGKILL at the same point recovers the replay's state.
func TestExpiredProducersAreTheOnlyDifferenceFromAReplay(t *testing.T) {
	fs := logtest.NewMemFS()
	p := advOpen(t, fs, Options{ManualFlush: true})
	advAppend(t, p, batch.Spec{ProducerID: 3, ProducerEpoch: 0, BaseSequence: 0}, "s0")
	advAppend(t, p, batch.Spec{ProducerID: 4, ProducerEpoch: 0, BaseSequence: 0}, "t0")
	advSync(t, p)
	if err := p.Close(); err != nil { // snapshot at 2 holds producers 3 and 4
		t.Fatal(err)
	}
	p = advOpen(t, fs, Options{ManualFlush: true})
	if n := p.ExpireProducers(time.Now().Add(time.Hour).UnixMilli(), 1000); n != 2 {
		t.Fatalf("expired %d producers, want 2", n)
	}
	advAppend(t, p, batch.Spec{ProducerID: 4, ProducerEpoch: 0, BaseSequence: 1}, "t1")
	advSync(t, p)
	killed := fs.Clone()
	if err := p.Close(); err != nil { // snapshot at 3 holds producer 4 only
		t.Fatal(err)
	}
	clean := advOpen(t, fs, Options{ManualFlush: true})
	defer clean.Close()
	kill := advOpen(t, killed, Options{ManualFlush: true})
	defer kill.Close()
	c := fs.Clone()
	for _, name := range c.List("/t", ".snapshot") {
		if err := c.Remove("/t/" + name); err != nil {
			t.Fatal(err)
		}
	}
	replay := advOpen(t, c, Options{ManualFlush: true})
	defer replay.Close()
	want := map[int64]producer.Entry{}
	for _, e := range replay.Producers() {
		want[e.ProducerID] = e
	}
	got := clean.Producers()
	for _, g := range got {
		w, ok := want[g.ProducerID]
		if !ok || g.Epoch != w.Epoch || g.InTxn != w.InTxn || g.LastOffset != w.LastOffset ||
			len(g.Batches) > len(w.Batches) || !slices.Equal(g.Batches, w.Batches[len(w.Batches)-len(g.Batches):]) {
			t.Fatalf("after expiration and a clean restart producer %+v is not the replay's %+v with fewer batches remembered", g, w)
		}
	}
	if len(got) != 1 || got[0].ProducerID != 4 {
		t.Fatalf("recovered producers %+v, want producer 4 only", got)
	}
	if k := producersOf(kill); !slices.Equal(k, replayed(t, killed)) {
		t.Fatalf("after a SIGKILL the recovered producers %v differ from a replay", k)
	}
}

// Crash at every file-system operation of DeleteRecords (the checkpoint,
// the segment removals, the producer snapshot), with open, committed and
// aborted transactions and an idempotent producer, snapshots below, at
// and above the new log start: after recovery the log start is the old
// or the new one, at most the HW, the LSO respects the open transaction,
// no aborted or open record is read committed, and the producer state
// equals a replay.
func TestCrashAtEveryOperationOfDeleteRecordsKeepsTheInvariants(t *testing.T) {
	for _, target := range []int64{1, 3, 4, 6, 7, 9, 10} {
		for n := 1; ; n++ {
			fs := logtest.NewMemFS()
			cfg := wlog.DefaultConfig()
			cfg.FS = fs
			cfg.SegmentBytes = 250
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			open := func(fs *logtest.MemFS) *Partition {
				c := cfg
				c.FS = fs
				p, err := OpenWith("t", 0, "/t", c, 0, []int32{0}, Options{ManualFlush: true, SnapshotIntervalBytes: 150})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			p := open(fs)
			idem := func(seq int32) batch.Spec { return batch.Spec{ProducerID: 3, ProducerEpoch: 0, BaseSequence: seq} }
			advAppend(t, p, txnSpec(7, 0), "ab7a", "ab7b") // 0-1
			advAppend(t, p, idem(0), "i0")                 // 2
			advAppend(t, p, txnSpec(8, 0), "c8")           // 3
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			p.AppendMarker(7, 0, false, 0)           // 4
			advAppend(t, p, txnSpec(9, 0), "open9a") // 5: stays open
			advAppend(t, p, idem(1), "i1", "i1b")    // 6-7
			p.AppendMarker(8, 0, true, 0)            // 8
			advAppend(t, p, txnSpec(9, 1), "open9b") // 9
			advAppend(t, p, plain, "p")              // 10
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			hw := p.HighWatermark()
			var crashed *logtest.MemFS
			ops := 0
			fs.SetFault(func(op logtest.Op, path string) error {
				if op == logtest.OpRead || op == logtest.OpReadDir {
					return nil
				}
				if crashed != nil {
					return logtest.ErrInjected
				}
				if ops++; ops == n {
					crashed = fs.Crash(func(string, int) int { return 0 })
					return logtest.ErrInjected
				}
				return nil
			})
			_, derr := p.DeleteRecordsBefore(target)
			fs.SetFault(nil)
			done := crashed == nil
			if done {
				if derr != nil {
					t.Fatal(derr)
				}
				crashed = fs.Crash(nil)
			}
			p.Close()
			q := open(crashed)
			start, lso, qhw := q.LogStartOffset(), q.LastStableOffset(), q.HighWatermark()
			if start != 0 && start != target || start > qhw || qhw < hw || lso < start || lso > qhw {
				t.Fatalf("target %d crash at op %d: start %d lso %d hw %d (hw before %d)", target, n, start, lso, qhw, hw)
			}
			if start <= 9 && lso > max(5, start) { // 9's last batch is at 9
				t.Fatalf("target %d crash at op %d: lso %d passes open transaction 9 at 5 (start %d)", target, n, lso, start)
			}
			for _, v := range committedView(t, q) {
				if strings.Contains(v, "ab7") || strings.Contains(v, "open9") {
					t.Fatalf("target %d crash at op %d: read_committed %v", target, n, committedView(t, q))
				}
			}
			if got, want := producersHeldFrom(q.Producers(), nil, start), replayedFrom(t, crashed, q.Producers(), start); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("target %d crash at op %d: recovered producers\n%v\nreplay\n%v", target, n, got, want)
			}
			q.Close()
			if done {
				t.Logf("target %d: %d operations", target, n-1)
				break
			}
		}
	}
}

// producersHeldFrom is producersOf where an open transaction that began at
// or below the log start counts as the same whatever first offset each
// side names (the recovered state keeps where it began, a replay finds
// its first batch still readable; the last stable offset is held at the
// log start or later either way, as the simulation's sameProducers
// allows).
func producersHeldFrom(entries, recovered []producer.Entry, start int64) []string {
	held := map[int64]bool{}
	for _, e := range recovered {
		if e.InTxn && e.TxnFirstOffset <= start {
			held[e.ProducerID] = true
		}
	}
	var out []string
	for _, e := range entries {
		e.LastUpdateMs = 0
		if e.InTxn && (held[e.ProducerID] || recovered == nil && e.TxnFirstOffset <= start) {
			e.TxnFirstOffset = -1
		}
		out = append(out, fmtEntry(e))
	}
	return out
}

func replayedFrom(t *testing.T, fs *logtest.MemFS, recovered []producer.Entry, start int64) []string {
	t.Helper()
	c := fs.Clone()
	for _, name := range c.List("/t", ".snapshot") {
		if err := c.Remove("/t/" + name); err != nil {
			t.Fatal(err)
		}
	}
	q := advOpen(t, c, Options{ManualFlush: true})
	defer q.Close()
	return producersHeldFrom(q.Producers(), recovered, start)
}

// Appends of a transactional and a plain producer, markers, the running
// flusher (snapshot every round), DeleteRecords, retention and
// compaction at once under -race; a reader checks that the LSO never
// moves back and the log start never passes the HW.
func TestConcurrentAppendsFlushesAndPurgesKeepTheOffsetsInOrder(t *testing.T) {
	fs := logtest.NewMemFS()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	cfg.SegmentBytes = 400
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := OpenWith("t", 0, "/t", cfg, 0, []int32{0}, Options{SnapshotIntervalBytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var seq int32
	run(func(i int) error { // transactional producer 7
		b := batch.Build(txnSpec(7, seq), []batch.Record{{Key: []byte("k"), Value: []byte("t")}})
		h, _ := batch.Validate(b)
		base, _, err := p.Append(b, h, 0)
		if err != nil {
			return err
		}
		seq++
		if err := <-p.WaitDurable(base + 1); err != nil {
			return err
		}
		end, err := p.AppendMarker(7, 0, i%3 != 0, 0)
		if err != nil {
			return err
		}
		return <-p.WaitDurable(end)
	})
	run(func(i int) error { // plain producer
		b := batch.Build(plain, []batch.Record{{Key: []byte("k"), Value: []byte("p")}})
		h, _ := batch.Validate(b)
		base, _, err := p.Append(b, h, 0)
		if err != nil {
			return err
		}
		return <-p.WaitDurable(base + 1)
	})
	run(func(i int) error {
		switch i % 3 {
		case 0:
			hw := p.HighWatermark()
			_, err := p.DeleteRecordsBefore(p.LogStartOffset() + (hw-p.LogStartOffset())/2)
			return err
		case 1:
			_, err := p.EnforceRetention()
			return err
		default:
			_, err := p.Compact(time.Now(), 0)
			return err
		}
	})
	run(func(int) error {
		lso := p.LastStableOffset()
		if last := lastLSO.Swap(lso); lso < last {
			return fmt.Errorf("LSO moved back from %d to %d", last, lso)
		}
		if start, hw := p.LogStartOffset(), p.HighWatermark(); start > hw {
			return fmt.Errorf("log start %d passes the HW %d", start, hw)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("log start %d, LSO %d, HW %d, log end %d", p.LogStartOffset(), p.LastStableOffset(), p.HighWatermark(), p.LogEndOffset())
}

var lastLSO atomic.Int64

// Invariant 6: a waiter registered before Close and one after it both
// get ErrClosed at once, with the flusher running and without.
func TestWaitDurableAroundCloseNeverHangs(t *testing.T) {
	for _, manual := range []bool{false, true} {
		fs := logtest.NewMemFS()
		p := advOpen(t, fs, Options{ManualFlush: manual})
		fs.SetFault(logtest.FailAlways(logtest.OpSync, ".log", nil)) // nothing becomes durable
		end := advAppend(t, p, plain, "a") + 1
		before := p.WaitDurable(end + 5)
		p.Close()
		after := p.WaitDurable(end + 5)
		for name, ch := range map[string]<-chan error{"before": before, "after": after} {
			select {
			case err := <-ch:
				if err == nil {
					t.Fatalf("manual=%v %s Close: nil", manual, name)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("manual=%v: waiter registered %s Close left hanging", manual, name)
			}
		}
	}
}
