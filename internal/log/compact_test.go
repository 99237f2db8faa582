package log_test

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// entry is one record as appended.
type entry struct {
	key       string
	value     []byte // nil: a tombstone
	ts        int64
	producer  int64
	lastDelta int32 // of the batch it was appended in
	base      int64
}

const retentionMs = 60 * 60 * 1000 // delete.retention.ms in these tests

// compactFixture appends that many keyed batches (some gzip-compressed, some from an
// idempotent producer, some tombstones) one minute apart into small
// segments, syncs, and returns the log, what it holds by offset, and the
// time of the last append.
func compactFixture(t testing.TB, fs *logtest.MemFS, batches int) (*wlog.Log, map[int64]entry, *clock) {
	t.Helper()
	clk := newClock()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 2048
	cfg.Now = clk.Now
	l := mustOpen(t, cfg)
	log := map[int64]entry{}
	seq := int32(0)
	for i := range batches {
		n := 1 + i%3
		recs := make([]batch.Record, n)
		for j := range recs {
			k := (i*7 + j*3) % 17
			recs[j] = batch.Record{Key: []byte("k" + strconv.Itoa(k)), Value: []byte(fmt.Sprintf("v%d.%d", i, j))}
			if (i+j)%11 == 0 {
				recs[j].Value = nil
			}
		}
		spec := batch.Spec{Timestamp: clk.ms(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
		if i%5 == 0 {
			spec.ProducerID, spec.ProducerEpoch, spec.BaseSequence = 7, 0, seq
			seq += int32(n)
		}
		b := batch.Build(spec, recs)
		if i%4 == 1 {
			b = recompress(t, b, 1)
		}
		base, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range recs {
			log[base+int64(j)] = entry{key: string(r.Key), value: r.Value, ts: clk.ms(), producer: spec.ProducerID, lastDelta: int32(n - 1), base: base}
		}
		clk.advance(time.Minute)
	}
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	return l, log, clk
}

// recompress returns b with its records compressed with codec.
func recompress(t testing.TB, b []byte, codec int16) []byte {
	t.Helper()
	h, _ := batch.ParseHeader(b)
	recs, err := batch.DecodeRecords(b)
	if err != nil {
		t.Fatal(err)
	}
	h.Attributes |= codec
	out, err := batch.Reassemble(h, recs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stored is every record the log holds, by offset, and its batch headers.
func stored(t testing.TB, l *wlog.Log) (map[int64]entry, []batch.Header) {
	t.Helper()
	got := map[int64]entry{}
	var headers []batch.Header
	next := l.StartOffset()
	for next < l.EndOffset() {
		data, err := l.Read(next, l.EndOffset(), 1<<20)
		if err != nil {
			t.Fatalf("read at %d: %v", next, err)
		}
		for len(data) > 0 {
			h, err := batch.ParseHeader(data)
			if err != nil {
				t.Fatalf("batch at %d: %v", next, err)
			}
			if h.BaseOffset != next {
				t.Fatalf("batch at %d follows one that ended at %d", h.BaseOffset, next)
			}
			if err := batch.CheckCRC(data[:h.Size()], h); err != nil {
				t.Fatal(err)
			}
			recs, err := batch.DecodeRecords(data[:h.Size()])
			if err != nil {
				t.Fatalf("batch at %d: %v", h.BaseOffset, err)
			}
			for _, r := range recs {
				if r.OffsetDelta > h.LastOffsetDelta {
					t.Fatalf("record delta %d beyond the batch's last %d", r.OffsetDelta, h.LastOffsetDelta)
				}
				got[h.BaseOffset+int64(r.OffsetDelta)] = entry{key: string(r.Key), value: r.Value, ts: h.BaseTimestamp + r.TimestampDelta64}
			}
			headers = append(headers, h)
			next = h.NextOffset()
			data = data[h.Size():]
		}
	}
	return got, headers
}

// activeBase is the base offset of the last segment file.
func activeBase(t testing.TB, fs *logtest.MemFS) int64 {
	names := fs.List(dir, ".log")
	n, err := strconv.ParseInt(names[len(names)-1][:20], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// afterCompaction is what a pass at nowMs must leave: below the active
// segment, the latest record of each key unless it is a tombstone older
// than the retention; the active segment as it was.
func afterCompaction(log map[int64]entry, active, nowMs int64) map[int64]entry {
	latest := map[string]int64{}
	for off, e := range log {
		if off < active && off >= latest[e.key] {
			latest[e.key] = off
		}
	}
	want := map[int64]entry{}
	for off, e := range log {
		if off >= active || (latest[e.key] == off && (e.value != nil || e.ts >= nowMs-retentionMs)) {
			want[off] = e
		}
	}
	return want
}

// sameRecord compares what a reader sees of two records.
func sameRecord(a, b entry) bool {
	return a.key == b.key && bytes.Equal(a.value, b.value) && (a.value == nil) == (b.value == nil) && a.ts == b.ts
}

func TestCompactionKeepsTheLatestRecordPerKeyAtItsOffset(t *testing.T) {
	fs := logtest.NewMemFS()
	l, log, clk := compactFixture(t, fs, 240)
	end := l.EndOffset()
	now := clk.Now().Add(2 * time.Hour) // some tombstones have aged out
	want := afterCompaction(log, activeBase(t, fs), now.UnixMilli())

	stats, err := l.Compact(now, retentionMs, wlog.TxnOutcomes{StableOffset: math.MaxInt64})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Segments == 0 || stats.TombstonesRemoved == 0 || stats.BytesAfter >= stats.BytesBefore {
		t.Fatalf("compaction did little: %+v", stats)
	}
	check := func(when string, l *wlog.Log) {
		t.Helper()
		got, headers := stored(t, l)
		if len(got) != len(want) {
			t.Fatalf("%s: %d records, want %d", when, len(got), len(want))
		}
		for off, e := range want {
			if g, ok := got[off]; !ok || !sameRecord(g, e) {
				t.Fatalf("%s: offset %d holds %+v (present %v), want %+v", when, off, g, ok, e)
			}
		}
		if l.EndOffset() != end {
			t.Fatalf("%s: log end %d, was %d", when, l.EndOffset(), end)
		}
		// Every batch of the idempotent producer is still there with its
		// offsets, so its sequence numbers can be rebuilt.
		bases := map[int64]batch.Header{}
		for _, h := range headers {
			bases[h.BaseOffset] = h
		}
		for _, e := range log {
			if e.producer >= 0 {
				if h, ok := bases[e.base]; !ok || h.ProducerID != e.producer || h.LastOffsetDelta != e.lastDelta {
					t.Fatalf("%s: idempotent batch at %d is gone or changed: %+v", when, e.base, h)
				}
			}
		}
	}
	check("after compaction", l)
	if again, err := l.Compact(now, retentionMs, wlog.TxnOutcomes{StableOffset: math.MaxInt64}); err != nil || again.Segments != 0 {
		t.Fatalf("second pass at the same time: %+v, %v", again, err)
	}

	// The compacted segments pass recovery, and appends continue at the
	// same offsets.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := memConfig(fs)
	cfg.SegmentBytes = 2048
	l2 := mustOpen(t, cfg)
	check("after reopening", l2)
	base, err := l2.Append(makeBatch(1, 10, clk.ms()))
	if err != nil || base != end {
		t.Fatalf("append after compaction: base %d, %v; want %d", base, err, end)
	}
	l2.Close()
}

func TestTombstonesYoungerThanTheRetentionStay(t *testing.T) {
	fs := logtest.NewMemFS()
	l, log, clk := compactFixture(t, fs, 240)
	defer l.Close()
	// A pass far enough back in time keeps every tombstone; one far in the
	// future removes all that are the latest of their key.
	past := clk.Now().Add(-10 * time.Hour)
	if _, err := l.Compact(past, retentionMs, wlog.TxnOutcomes{StableOffset: math.MaxInt64}); err != nil {
		t.Fatal(err)
	}
	active := activeBase(t, fs)
	got, _ := stored(t, l)
	want := afterCompaction(log, active, past.UnixMilli())
	kept := 0
	for off, e := range want {
		if e.value == nil && off < active {
			kept++
			if _, ok := got[off]; !ok {
				t.Fatalf("young tombstone at %d removed", off)
			}
		}
	}
	if kept == 0 {
		t.Fatal("fixture has no tombstone that is the latest of its key")
	}
	if _, err := l.Compact(clk.Now().Add(10*time.Hour), retentionMs, wlog.TxnOutcomes{StableOffset: math.MaxInt64}); err != nil {
		t.Fatal(err)
	}
	got, _ = stored(t, l)
	for off, e := range got {
		if e.value == nil && off < active {
			t.Fatalf("tombstone at %d outlived the retention", off)
		}
	}
}

// A crash (power loss or SIGKILL) at any file operation of a compaction
// leaves a log that opens and holds, at every offset, either what was
// appended there or nothing, and never loses a record compaction keeps.
func TestCompactionCrashAtAnyStepLeavesAValidLog(t *testing.T) {
	const crashBatches = 100 // several segments, kept small: the fixture is rebuilt per step
	ref := logtest.NewMemFS()
	lref, log, clk := compactFixture(t, ref, crashBatches)
	end := lref.EndOffset()
	want := afterCompaction(log, activeBase(t, ref), clk.ms())
	lref.Close()

	for n := 1; ; n++ {
		fs := logtest.NewMemFS()
		l, _, _ := compactFixture(t, fs, crashBatches)
		ops := 0
		fs.SetFault(func(logtest.Op, string) error {
			if ops++; ops == n {
				return logtest.ErrInjected
			}
			return nil
		})
		_, err := l.Compact(clk.Now(), retentionMs, wlog.TxnOutcomes{StableOffset: math.MaxInt64})
		fs.SetFault(nil)
		done := err == nil && ops < n

		for _, after := range []struct {
			name string
			fs   *logtest.MemFS
		}{{"power loss", fs.Crash(nil)}, {"SIGKILL", fs.Clone()}} {
			l2, err := wlog.Open(dir, memConfig(after.fs))
			if err != nil {
				t.Fatalf("%s at operation %d: open: %v", after.name, n, err)
			}
			got, _ := stored(t, l2)
			for off, e := range got {
				if orig, ok := log[off]; !ok || !sameRecord(orig, e) {
					t.Fatalf("%s at operation %d: offset %d holds %+v, appended %+v", after.name, n, off, e, orig)
				}
			}
			for off := range want {
				if _, ok := got[off]; !ok {
					t.Fatalf("%s at operation %d: kept record at %d lost", after.name, n, off)
				}
			}
			if l2.EndOffset() != end {
				t.Fatalf("%s at operation %d: log end %d, want %d", after.name, n, l2.EndOffset(), end)
			}
			if left := after.fs.List(dir, ".tmp"); len(left) > 0 {
				t.Fatalf("%s at operation %d: leftovers %v", after.name, n, left)
			}
			l2.Close()
		}
		l.Close()
		if done {
			if n < 10 {
				t.Fatalf("compaction took only %d file operations", n)
			}
			return
		}
	}
}

// TestCompactionFollowsEachTransactionsOutcome: a committed transaction's
// record supersedes the value before it; an aborted transaction's record
// goes and supersedes nothing; a transaction not known to have ended is
// kept whole and supersedes nothing; the markers stay. Without outcomes
// every transactional batch is kept whole.
func TestCompactionFollowsEachTransactionsOutcome(t *testing.T) {
	const committed, aborted, open = 10, 11, 12
	build := func(t *testing.T) *wlog.Log {
		cfg := memConfig(logtest.NewMemFS())
		cfg.SegmentBytes = 200 // about a batch per segment
		l := mustOpen(t, cfg)
		appendBatch := func(b []byte) {
			t.Helper()
			if _, err := l.Append(b); err != nil {
				t.Fatal(err)
			}
		}
		plain := func(key, value string) {
			appendBatch(batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
				[]batch.Record{{Key: []byte(key), Value: []byte(value)}}))
		}
		txn := func(pid int64, key, value string) {
			appendBatch(batch.Build(batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, BaseSequence: 0},
				[]batch.Record{{Key: []byte(key), Value: []byte(value)}}))
		}
		marker := func(pid int64, commit bool) {
			key := kmsg.NewControlRecordKey()
			key.Type = batch.ControlAbort
			if commit {
				key.Type = batch.ControlCommit
			}
			value := kmsg.NewEndTxnMarker()
			appendBatch(batch.Build(batch.Spec{Attributes: batch.AttrControl | batch.AttrTransactional, ProducerID: pid, BaseSequence: -1},
				[]batch.Record{{Key: key.AppendTo(nil), Value: value.AppendTo(nil)}}))
		}
		plain("a", "a1")          // 0
		plain("b", "b1")          // 1
		txn(committed, "a", "a2") // 2
		marker(committed, true)   // 3
		txn(aborted, "b", "b2")   // 4
		marker(aborted, false)    // 5
		txn(open, "a", "a3")      // 6: the last stable offset
		for i := range 4 {
			plain("z", strconv.Itoa(i)) // 7..10, so everything above is sealed
		}
		if _, err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		return l
	}
	values := func(l *wlog.Log) map[int64]string {
		got, _ := stored(t, l)
		out := map[int64]string{}
		for off, e := range got {
			if off <= 6 && e.key != "" && e.key[0] != 0 { // data records, not markers
				out[off] = string(e.value)
			}
		}
		return out
	}
	markers := func(l *wlog.Log) int {
		_, headers := stored(t, l)
		n := 0
		for _, h := range headers {
			if h.Control() {
				n++
			}
		}
		return n
	}

	t.Run("outcomes known", func(t *testing.T) {
		l := build(t)
		defer l.Close()
		outcomes := wlog.TxnOutcomes{StableOffset: 6, Aborted: func(pid, off int64) bool {
			return pid == aborted && off >= 4 && off <= 5
		}}
		if _, err := l.Compact(time.Now(), retentionMs, outcomes); err != nil {
			t.Fatal(err)
		}
		want := map[int64]string{1: "b1", 2: "a2", 6: "a3"}
		if got := values(l); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("records after compaction %v, want %v", got, want)
		}
		if n := markers(l); n != 2 {
			t.Fatalf("%d markers after compaction, want 2", n)
		}
	})
	t.Run("outcomes unknown", func(t *testing.T) {
		l := build(t)
		defer l.Close()
		if _, err := l.Compact(time.Now(), retentionMs, wlog.TxnOutcomes{StableOffset: math.MaxInt64}); err != nil {
			t.Fatal(err)
		}
		want := map[int64]string{0: "a1", 1: "b1", 2: "a2", 4: "b2", 6: "a3"}
		if got := values(l); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("records after compaction %v, want %v", got, want)
		}
	})
}
