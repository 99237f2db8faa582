package log_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

func TestAppendReadRoundTripAcrossSegments(t *testing.T) {
	for _, fsName := range []string{"mem", "os"} {
		t.Run(fsName, func(t *testing.T) {
			cfg := wlog.DefaultConfig()
			cfg.SegmentBytes = 1500
			cfg.IndexIntervalBytes = 300
			d := dir
			mem := newMem()
			if fsName == "os" {
				d = t.TempDir()
			} else {
				cfg.FS = mem
			}
			l, err := wlog.Open(d, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var m model
			for i := range 60 {
				m.append(t, l, makeBatch(1+i%4, 20+i*7%200, int64(1000+i)))
			}
			equalBatches(t, readAll(t, l), m.batches)
			all, err := l.Read(0, l.EndOffset(), 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(all, bytes.Join(m.batches, nil)) {
				t.Fatal("one large read differs from the appended batches")
			}
			if l.Size() != int64(len(all)) {
				t.Fatalf("size %d, want %d", l.Size(), len(all))
			}
			// Every offset, not just batch starts, finds its batch.
			for off := int64(0); off < l.EndOffset(); off++ {
				b, err := l.Read(off, l.EndOffset(), 0)
				if err != nil {
					t.Fatal(err)
				}
				h, _ := batch.ParseHeader(b)
				if h.BaseOffset > off || h.NextOffset() <= off || len(b) != h.Size() {
					t.Fatalf("read at %d returned batch [%d, %d) of %d bytes", off, h.BaseOffset, h.NextOffset(), len(b))
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if fsName == "mem" {
				if n := len(mem.List(dir, ".log")); n < 5 {
					t.Fatalf("%d segments, want several", n)
				}
			}
			l, err = wlog.Open(d, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			equalBatches(t, readAll(t, l), m.batches)
		})
	}
}

func TestReadLimits(t *testing.T) {
	l := mustOpen(t, memConfig(newMem()))
	defer l.Close()
	var m model
	for i := range 10 {
		m.append(t, l, makeBatch(2, 100, int64(i))) // offsets 0..19, two per batch
	}
	size := len(m.batches[0])
	cases := []struct {
		name              string
		offset, maxOffset int64
		maxBytes          int
		want              [][]byte
	}{
		{"all", 0, 20, 1 << 20, m.batches},
		{"max offset excludes batches starting at or after it", 0, 6, 1 << 20, m.batches[:3]},
		{"max offset inside a batch keeps that batch", 0, 5, 1 << 20, m.batches[:3]},
		{"max bytes counts whole batches", 0, 20, 3*size + size/2, m.batches[:3]},
		{"first batch returned whole above max bytes", 4, 20, 10, m.batches[2:3]},
		{"zero max bytes still returns one batch", 4, 20, 0, m.batches[2:3]},
		{"offset inside a batch starts at that batch", 5, 20, 2 * size, m.batches[2:4]},
		{"at max offset returns nothing", 6, 6, 1 << 20, nil},
		{"beyond max offset returns nothing", 8, 6, 1 << 20, nil},
		{"at log end returns nothing", 20, 30, 1 << 20, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := l.Read(c.offset, c.maxOffset, c.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, bytes.Join(c.want, nil)) {
				t.Fatalf("got %d bytes, want %d", len(got), len(bytes.Join(c.want, nil)))
			}
			// ReadInto returns the same bytes whatever the buffer held
			// before, growing a small one and reusing a large one.
			for _, capacity := range []int{0, 7, size + 1, 1 << 16} {
				buf := bytes.Repeat([]byte{0xAB}, capacity)
				got, err := l.ReadInto(buf, c.offset, c.maxOffset, c.maxBytes)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, bytes.Join(c.want, nil)) {
					t.Fatalf("ReadInto a buffer of %d: got %d bytes, want %d", capacity, len(got), len(bytes.Join(c.want, nil)))
				}
				if len(got) > 0 && len(got) <= capacity && &got[0] != &buf[0] {
					t.Fatalf("ReadInto allocated although its buffer of %d held the %d bytes", capacity, len(got))
				}
			}
		})
	}
}

func TestReadOutsideTheLogIsOutOfRange(t *testing.T) {
	l := mustOpen(t, memConfig(newMem()))
	defer l.Close()
	var m model
	for range 5 {
		m.append(t, l, makeBatch(2, 10, 1))
	}
	if err := l.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{-1, 0, 2, 11, 100} {
		if _, err := l.Read(off, 100, 100); !errors.Is(err, wlog.ErrOffsetOutOfRange) {
			t.Errorf("read at %d: %v, want out of range", off, err)
		}
	}
	// Offset 3 lies in the batch [2, 4), which is returned whole.
	b, err := l.Read(3, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, m.batches[1]) {
		t.Fatal("read at the start offset inside a batch did not return that batch")
	}
	if b, err := l.Read(10, 100, 100); err != nil || b != nil {
		t.Fatalf("read at log end: %d bytes, %v", len(b), err)
	}
}

func TestAppendWithBadCRCIsCorruptAndWritesNothing(t *testing.T) {
	fs := newMem()
	l := mustOpen(t, memConfig(fs))
	defer l.Close()
	var m model
	m.append(t, l, makeBatch(1, 10, 1))
	writes := fs.Ops(logtest.OpWrite)
	good := makeBatch(3, 50, 2)
	cases := map[string][]byte{
		"record byte": func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }(),
		"crc field":   func() []byte { b := bytes.Clone(good); b[17] ^= 1; return b }(),
		"truncated":   good[:len(good)-1],
		"extra bytes": append(bytes.Clone(good), 0),
		"empty":       nil,
	}
	for name, b := range cases {
		if _, err := l.Append(b); !errors.Is(err, batch.ErrCorrupt) {
			t.Errorf("%s: %v, want corrupt", name, err)
		}
	}
	if fs.Ops(logtest.OpWrite) != writes || l.EndOffset() != 1 {
		t.Fatalf("a rejected batch reached the file: %d writes, end %d", fs.Ops(logtest.OpWrite)-writes, l.EndOffset())
	}
	m.append(t, l, good)
	equalBatches(t, readAll(t, l), m.batches)
}

func TestAppendRejectsABatchLargerThanASegment(t *testing.T) {
	cfg := memConfig(newMem())
	cfg.SegmentBytes = 200
	l := mustOpen(t, cfg)
	defer l.Close()
	if _, err := l.Append(makeBatch(1, 300, 1)); !errors.Is(err, wlog.ErrBatchTooLarge) {
		t.Fatalf("got %v", err)
	}
	if _, err := l.Append(makeBatch(1, 100, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestOffsetsStayDenseAcrossRestarts(t *testing.T) {
	restarts := map[string]func(fs *logtest.MemFS, l *wlog.Log) *logtest.MemFS{
		"clean": func(fs *logtest.MemFS, l *wlog.Log) *logtest.MemFS {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			return fs
		},
		"kill -9": func(fs *logtest.MemFS, l *wlog.Log) *logtest.MemFS { return fs.Clone() },
		"power loss after sync": func(fs *logtest.MemFS, l *wlog.Log) *logtest.MemFS {
			if _, err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			return fs.Crash(nil)
		},
	}
	for name, restart := range restarts {
		t.Run(name, func(t *testing.T) {
			fs := newMem()
			cfg := memConfig(fs)
			cfg.SegmentBytes = 1000
			var m model
			for round := range 4 {
				cfg.FS = fs
				l := mustOpen(t, cfg)
				if l.EndOffset() != m.next {
					t.Fatalf("round %d: end %d, want %d", round, l.EndOffset(), m.next)
				}
				if l.FlushedOffset() != l.EndOffset() {
					t.Fatalf("round %d: flushed %d after open, end %d", round, l.FlushedOffset(), l.EndOffset())
				}
				equalBatches(t, readAll(t, l), m.batches)
				for i := range 7 {
					m.append(t, l, makeBatch(1+i%3, 100, int64(i)))
				}
				fs = restart(fs, l)
			}
		})
	}
}

func TestSegmentRollsByAge(t *testing.T) {
	fs, clk := newMem(), newClock()
	cfg := memConfig(fs)
	cfg.Now = clk.Now
	cfg.SegmentMs = 60_000
	l := mustOpen(t, cfg)
	var m model
	m.append(t, l, makeBatch(1, 10, clk.ms()))
	clk.advance(59 * time.Second)
	m.append(t, l, makeBatch(1, 10, clk.ms()))
	if n := len(fs.List(dir, ".log")); n != 1 {
		t.Fatalf("%d segments before the segment is a minute old", n)
	}
	clk.advance(2 * time.Second)
	m.append(t, l, makeBatch(1, 10, clk.ms()))
	if n := len(fs.List(dir, ".log")); n != 2 {
		t.Fatalf("%d segments after a minute, want 2", n)
	}
	// The age survives a restart: it starts at the first batch's timestamp.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, cfg)
	defer l.Close()
	clk.advance(61 * time.Second)
	m.append(t, l, makeBatch(1, 10, clk.ms()))
	if n := len(fs.List(dir, ".log")); n != 3 {
		t.Fatalf("%d segments after restart and a minute, want 3", n)
	}
	equalBatches(t, readAll(t, l), m.batches)
}

func TestOffsetForTimestampFindsFirstBatchAtOrAfter(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 800
	cfg.IndexIntervalBytes = 200
	l := mustOpen(t, cfg)
	// Timestamps rise by 10 per batch of two records, with one dip that
	// must not hide later batches.
	var m model
	var stamps []int64
	for i := range 30 {
		ts := int64(1000 + 10*i)
		if i == 12 {
			ts = 900
		}
		stamps = append(stamps, ts)
		m.append(t, l, makeBatch(2, 60, ts))
	}
	check := func(l *wlog.Log) {
		t.Helper()
		for q := int64(890); q <= 1300; q += 5 {
			wantOff, wantTs, wantOK := int64(-1), int64(-1), false
			for i, ts := range stamps {
				if ts >= q {
					wantOff, wantTs, wantOK = int64(2*i), ts, true
					break
				}
			}
			off, ts, ok := l.OffsetForTimestamp(q)
			if off != wantOff || ts != wantTs || ok != wantOK {
				t.Fatalf("query %d: got (%d, %d, %v), want (%d, %d, %v)", q, off, ts, ok, wantOff, wantTs, wantOK)
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, cfg) // indexes loaded from files this time
	check(l)
	// Below the log start offset nothing is found.
	if err := l.DeleteRecordsBefore(9); err != nil {
		t.Fatal(err)
	}
	if off, _, ok := l.OffsetForTimestamp(0); !ok || off != 9 {
		t.Fatalf("after DeleteRecordsBefore(9): offset %d ok %v, want 9", off, ok)
	}
	l.Close()
}

func TestMaxTimestampTracksTheLargestBatchTimestamp(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 500
	l := mustOpen(t, cfg)
	if off, ts := l.MaxTimestamp(); off != -1 || ts != -1 {
		t.Fatalf("empty log: (%d, %d)", off, ts)
	}
	var m model
	for i, ts := range []int64{5, 50, 7, 49, 50, 3} {
		_ = i
		m.append(t, l, makeBatch(3, 80, ts))
	}
	// The batch [3, 6) first reached 50; under CreateTime its last record counts.
	want := func(l *wlog.Log) {
		t.Helper()
		if off, ts := l.MaxTimestamp(); off != 5 || ts != 50 {
			t.Fatalf("max timestamp (%d, %d), want (5, 50)", off, ts)
		}
	}
	want(l)
	l.Close()
	l = mustOpen(t, cfg)
	want(l)
	clone := fs.Clone()
	l.Close()
	cfg.FS = clone
	l = mustOpen(t, cfg)
	defer l.Close()
	want(l)
	if err := l.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if off, ts := l.MaxTimestamp(); off != 2 || ts != 5 {
		t.Fatalf("after truncation (%d, %d), want (2, 5)", off, ts)
	}
}

func TestSetConfigAppliesToLaterAppends(t *testing.T) {
	fs := newMem()
	l := mustOpen(t, memConfig(fs))
	defer l.Close()
	var m model
	for range 5 {
		m.append(t, l, makeBatch(1, 100, 1))
	}
	cfg := l.Config()
	cfg.SegmentBytes = 300
	l.SetConfig(cfg)
	for range 5 {
		m.append(t, l, makeBatch(1, 100, 1))
	}
	if n := len(fs.List(dir, ".log")); n < 3 {
		t.Fatalf("%d segments after lowering segment bytes", n)
	}
	equalBatches(t, readAll(t, l), m.batches)
}

func TestClosedLogRefusesWork(t *testing.T) {
	l := mustOpen(t, memConfig(newMem()))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(makeBatch(1, 1, 1)); !errors.Is(err, wlog.ErrClosed) {
		t.Fatalf("append: %v", err)
	}
	if _, err := l.Read(0, 1, 1); !errors.Is(err, wlog.ErrClosed) {
		t.Fatalf("read: %v", err)
	}
	if _, err := l.Sync(); !errors.Is(err, wlog.ErrClosed) {
		t.Fatalf("sync: %v", err)
	}
	if err := l.Close(); !errors.Is(err, wlog.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}
