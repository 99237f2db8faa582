package log_test

import (
	"errors"
	"testing"
	"time"

	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// fillSegments appends n batches of about 250 bytes to a log whose
// segments hold three each, stamped with the clock advanced a minute each.
func fillSegments(t *testing.T, l *wlog.Log, m *model, clk *clock, n int) {
	for range n {
		m.append(t, l, makeBatch(2, 80, clk.ms()))
		clk.advance(time.Minute)
	}
}

func TestDeleteRecordsBeforePersistsAcrossReopen(t *testing.T) {
	fs, clk := newMem(), newClock()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 800
	cfg.Now = clk.Now
	l := mustOpen(t, cfg)
	var m model
	fillSegments(t, l, &m, clk, 12) // offsets 0..23
	segs := len(fs.List(dir, ".log"))
	if err := l.DeleteRecordsBefore(100); !errors.Is(err, wlog.ErrOffsetOutOfRange) {
		t.Fatalf("beyond the end: %v", err)
	}
	if err := l.DeleteRecordsBefore(13); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteRecordsBefore(5); err != nil || l.StartOffset() != 13 {
		t.Fatalf("moving backwards: %v, start %d", err, l.StartOffset())
	}
	if got := len(fs.List(dir, ".log")); got >= segs {
		t.Fatalf("%d segments, none deleted from %d", got, segs)
	}
	if _, err := l.Read(12, 100, 100); !errors.Is(err, wlog.ErrOffsetOutOfRange) {
		t.Fatalf("read below the start: %v", err)
	}
	want := m.batches[6:] // batch [12, 14) holds the start offset
	equalBatches(t, readAll(t, l), want)
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}

	reopen := map[string]func() *logtest.MemFS{
		"power loss": func() *logtest.MemFS { return fs.Crash(nil) },
		"kill -9":    func() *logtest.MemFS { return fs.Clone() },
	}
	for name, f := range reopen {
		c := cfg
		c.FS = f()
		l2 := mustOpen(t, c)
		if l2.StartOffset() != 13 || l2.EndOffset() != 24 {
			t.Fatalf("%s: start %d end %d", name, l2.StartOffset(), l2.EndOffset())
		}
		equalBatches(t, readAll(t, l2), want)
		l2.Close()
	}
	// Deleting up to the end keeps the (now empty of readable data) active segment.
	if err := l.DeleteRecordsBefore(24); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != 24 || l.EndOffset() != 24 {
		t.Fatalf("start %d end %d", l.StartOffset(), l.EndOffset())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, cfg)
	defer l.Close()
	if l.StartOffset() != 24 {
		t.Fatalf("start %d after reopen", l.StartOffset())
	}
	if base, err := l.Append(makeBatch(1, 1, clk.ms())); err != nil || base != 24 {
		t.Fatalf("append: %d, %v", base, err)
	}
}

func TestSegmentsLeftByAnInterruptedDeletionAreRemovedAtOpen(t *testing.T) {
	fs, clk := newMem(), newClock()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 800
	cfg.Now = clk.Now
	l := mustOpen(t, cfg)
	var m model
	fillSegments(t, l, &m, clk, 12)
	fs.SetFault(logtest.FailAlways(logtest.OpRemove, ".log", nil))
	if err := l.DeleteRecordsBefore(13); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(nil)
	before := len(fs.List(dir, ".log"))
	cfg.FS = fs.Clone()
	l = mustOpen(t, cfg)
	defer l.Close()
	if l.StartOffset() != 13 {
		t.Fatalf("start %d", l.StartOffset())
	}
	if after := len(cfg.FS.(*logtest.MemFS).List(dir, ".log")); after >= before {
		t.Fatalf("%d segments before reopening, %d after", before, after)
	}
	equalBatches(t, readAll(t, l), m.batches[6:])
}

func TestRetentionByBytesKeepsAtLeastTheLimit(t *testing.T) {
	fs, clk := newMem(), newClock()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 800
	cfg.Now = clk.Now
	l := mustOpen(t, cfg)
	defer l.Close()
	var m model
	fillSegments(t, l, &m, clk, 20)
	if n, err := l.EnforceRetention(noLimit); err != nil || n != 0 {
		t.Fatalf("with no limits: deleted %d, %v", n, err)
	}
	size := l.Size()
	limit := size / 3
	cfg = l.Config()
	cfg.RetentionBytes = limit
	l.SetConfig(cfg)
	n, err := l.EnforceRetention(noLimit)
	if err != nil || n == 0 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if l.Size() < limit {
		t.Fatalf("size %d below the limit %d", l.Size(), limit)
	}
	first := readAll(t, l)[0]
	if l.Size()-int64(3*len(first)) >= limit {
		t.Fatalf("size %d: another segment could have gone", l.Size())
	}
	if got := readAll(t, l); len(got) == 0 || l.StartOffset() == 0 {
		t.Fatalf("start %d", l.StartOffset())
	}
	equalBatches(t, readAll(t, l), m.batches[len(m.batches)-len(readAll(t, l)):])
	// The active segment is never deleted by size.
	cfg.RetentionBytes = 0
	l.SetConfig(cfg)
	l.EnforceRetention(noLimit)
	if len(fs.List(dir, ".log")) != 1 || l.Size() == 0 {
		t.Fatalf("retention by size removed the active segment")
	}
}

func TestRetentionByTimeDeletesSegmentsWhoseNewestRecordExpired(t *testing.T) {
	fs, clk := newMem(), newClock()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 800 // three batches, three minutes, per segment
	cfg.Now = clk.Now
	cfg.RetentionMs = int64(10 * time.Minute / time.Millisecond)
	l := mustOpen(t, cfg)
	defer l.Close()
	var m model
	fillSegments(t, l, &m, clk, 12) // stamped t0 .. t0+11m; clock now t0+12m
	// Segments hold minutes [0,2], [3,5], [6,8], [9,11]; cut-off is t0+2m.
	if n, err := l.EnforceRetention(noLimit); err != nil || n != 0 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	clk.advance(time.Minute + time.Millisecond) // cut-off just after t0+3m-... newest of the first is t0+2m
	if n, err := l.EnforceRetention(noLimit); err != nil || n != 1 {
		t.Fatalf("deleted %d, %v; want the first segment", n, err)
	}
	if l.StartOffset() != 6 {
		t.Fatalf("start %d, want 6", l.StartOffset())
	}
	// When everything expired, even the active segment goes: it is rolled
	// first and the log continues at its end.
	clk.advance(time.Hour)
	n, err := l.EnforceRetention(noLimit)
	if err != nil || n != 3 {
		t.Fatalf("deleted %d, %v; want 3", n, err)
	}
	if l.StartOffset() != 24 || l.EndOffset() != 24 || l.Size() != 0 {
		t.Fatalf("start %d end %d size %d", l.StartOffset(), l.EndOffset(), l.Size())
	}
	if base, err := l.Append(makeBatch(1, 1, clk.ms())); err != nil || base != 24 {
		t.Fatalf("append: %d, %v", base, err)
	}
	if n, err := l.EnforceRetention(noLimit); err != nil || n != 0 {
		t.Fatalf("fresh data deleted: %d, %v", n, err)
	}
}

func TestLogRestartsAtStartWhenACrashLostDataAboveIt(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	l := mustOpen(t, cfg)
	var m model
	for range 5 {
		m.append(t, l, makeBatch(2, 10, 1))
	}
	// Never synced, yet released by DeleteRecords, whose start is durable.
	if err := l.DeleteRecordsBefore(10); err != nil {
		t.Fatal(err)
	}
	cfg.FS = fs.Crash(nil)
	l = mustOpen(t, cfg)
	defer l.Close()
	if l.StartOffset() != 10 || l.EndOffset() != 10 {
		t.Fatalf("start %d end %d, want 10 and 10: offsets must not be reused", l.StartOffset(), l.EndOffset())
	}
	if base, err := l.Append(makeBatch(1, 1, 1)); err != nil || base != 10 {
		t.Fatalf("append: %d, %v", base, err)
	}
}

func TestTruncateRemovesTheTailDurably(t *testing.T) {
	fs, clk := newMem(), newClock()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 800
	cfg.IndexIntervalBytes = 100
	cfg.Now = clk.Now
	l := mustOpen(t, cfg)
	var m model
	fillSegments(t, l, &m, clk, 12) // batches of two offsets; segments of three batches
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteRecordsBefore(4); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		offset int64
		want   error
	}{{3, wlog.ErrOffsetOutOfRange}, {25, wlog.ErrOffsetOutOfRange}, {9, wlog.ErrNotBatchBoundary}} {
		if err := l.Truncate(c.offset); !errors.Is(err, c.want) {
			t.Fatalf("truncate to %d: %v, want %v", c.offset, err, c.want)
		}
	}
	if err := l.Truncate(24); err != nil {
		t.Fatalf("truncate to the end: %v", err)
	}
	if err := l.Truncate(10); err != nil { // inside the second segment
		t.Fatal(err)
	}
	want := m.batches[2:5]
	equalBatches(t, readAll(t, l), want)
	if l.EndOffset() != 10 || l.FlushedOffset() > 10 {
		t.Fatalf("end %d flushed %d", l.EndOffset(), l.FlushedOffset())
	}
	// The truncation is durable as soon as Truncate returns.
	cc := cfg
	cc.FS = fs.Crash(nil)
	l2 := mustOpen(t, cc)
	if l2.EndOffset() != 10 {
		t.Fatalf("truncated batches came back after a power loss: end %d", l2.EndOffset())
	}
	l2.Close()
	m.batches, m.next = m.batches[:5], 10
	m.append(t, l, makeBatch(1, 30, clk.ms()))
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	want = m.batches[2:]
	for name, c := range map[string]*logtest.MemFS{"power loss": fs.Crash(nil), "kill -9": fs.Clone()} {
		cc := cfg
		cc.FS = c
		l2 := mustOpen(t, cc)
		if l2.EndOffset() != 11 {
			t.Fatalf("%s: end %d, want 11", name, l2.EndOffset())
		}
		equalBatches(t, readAll(t, l2), want)
		l2.Close()
	}
	// Truncate to a segment base empties that segment.
	if err := l.Truncate(6); err != nil {
		t.Fatal(err)
	}
	if err := l.Truncate(4); err != nil {
		t.Fatal(err)
	}
	// The batches below the start offset share the first segment and stay.
	if l.EndOffset() != 4 || l.Size() != int64(len(m.batches[0])+len(m.batches[1])) {
		t.Fatalf("end %d size %d", l.EndOffset(), l.Size())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, cfg)
	defer l.Close()
	if l.StartOffset() != 4 || l.EndOffset() != 4 {
		t.Fatalf("after reopen start %d end %d", l.StartOffset(), l.EndOffset())
	}
}

func TestRetentionByTimeUsesAppendTimeWhenBatchesHaveNoTimestamp(t *testing.T) {
	fs, clk := newMem(), newClock()
	fs.SetClock(clk.Now)
	cfg := memConfig(fs)
	cfg.SegmentBytes = 800
	cfg.Now = clk.Now
	cfg.RetentionMs = int64(time.Hour / time.Millisecond)
	l := mustOpen(t, cfg)
	defer l.Close()
	var m model
	for range 6 {
		m.append(t, l, makeBatch(2, 80, -1))
	}
	clk.advance(2 * time.Hour)
	for range 3 {
		m.append(t, l, makeBatch(2, 80, -1))
	}
	if n, err := l.EnforceRetention(noLimit); err != nil || n != 2 {
		t.Fatalf("deleted %d, %v; want the two old segments", n, err)
	}
	if l.StartOffset() != 12 {
		t.Fatalf("start %d", l.StartOffset())
	}
}
