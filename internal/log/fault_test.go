package log_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// segmentBytes returns the bytes of every .log file, in order.
func segmentBytes(fs *logtest.MemFS) []byte {
	var out []byte
	for _, n := range fs.List(dir, ".log") {
		b, _ := fs.ReadFile(dir + "/" + n)
		out = append(out, b...)
	}
	return out
}

func TestFailedWriteLeavesNothingVisibleAndTheLogUsable(t *testing.T) {
	fs := newMem()
	fs.SetTornWrites(true)
	l := mustOpen(t, memConfig(fs))
	var m model
	for range 3 {
		m.append(t, l, makeBatch(2, 50, 1))
	}
	before := segmentBytes(fs)
	fs.SetFault(logtest.FailNth(logtest.OpWrite, ".log", 1, nil))
	if _, err := l.Append(makeBatch(2, 50, 2)); !errors.Is(err, logtest.ErrInjected) || errors.Is(err, wlog.ErrFailed) {
		t.Fatalf("append with a failing write: %v", err)
	}
	if !bytes.Equal(segmentBytes(fs), before) {
		t.Fatal("the failed write's torn half is still in the file")
	}
	if l.EndOffset() != m.next {
		t.Fatalf("end %d after a failed append, want %d", l.EndOffset(), m.next)
	}
	equalBatches(t, readAll(t, l), m.batches)
	m.append(t, l, makeBatch(2, 50, 3)) // gets the offset the failed one would have
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	cfg := memConfig(fs.Crash(nil))
	checkRecovered(t, cfg, m.batches)
}

func TestFailedWriteThatCannotBeUndoneFailsTheLog(t *testing.T) {
	fs := newMem()
	fs.SetTornWrites(true)
	l := mustOpen(t, memConfig(fs))
	var m model
	m.append(t, l, makeBatch(2, 50, 1))
	fs.SetFault(logtest.Any(
		logtest.FailNth(logtest.OpWrite, ".log", 1, nil),
		logtest.FailAlways(logtest.OpTruncate, ".log", nil),
	))
	if _, err := l.Append(makeBatch(2, 50, 2)); !errors.Is(err, wlog.ErrFailed) {
		t.Fatalf("append: %v, want failed", err)
	}
	fs.SetFault(nil)
	if _, err := l.Append(makeBatch(1, 1, 1)); !errors.Is(err, wlog.ErrFailed) {
		t.Fatalf("append after failure: %v", err)
	}
	if _, err := l.Sync(); !errors.Is(err, wlog.ErrFailed) {
		t.Fatalf("sync after failure: %v", err)
	}
	// The torn half is on disk; recovery cuts it away.
	checkRecovered(t, memConfig(fs.Clone()), m.batches)
}

func TestFsyncFailureIsSticky(t *testing.T) {
	faults := map[string]logtest.Fault{
		"segment fsync":   logtest.FailNth(logtest.OpSync, ".log", 1, nil),
		"index fsync":     logtest.FailNth(logtest.OpSync, ".index", 1, nil),
		"directory fsync": logtest.FailNth(logtest.OpSyncDir, "", 1, nil),
	}
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			fs := newMem()
			cfg := memConfig(fs)
			cfg.SegmentBytes = 500
			l := mustOpen(t, cfg)
			var m model
			for range 3 {
				m.append(t, l, makeBatch(1, 100, 1))
			}
			synced, err := l.Sync()
			if err != nil {
				t.Fatal(err)
			}
			for range 4 { // rolls, so index files and a directory fsync are due
				m.append(t, l, makeBatch(1, 100, 1))
			}
			fs.SetFault(fault)
			if _, err := l.Sync(); !errors.Is(err, wlog.ErrFailed) {
				t.Fatalf("sync: %v, want failed", err)
			}
			fs.SetFault(nil)
			if l.FlushedOffset() != synced {
				t.Fatalf("flushed %d after a failed fsync, want %d", l.FlushedOffset(), synced)
			}
			if _, err := l.Sync(); !errors.Is(err, wlog.ErrFailed) {
				t.Fatalf("second sync: %v, want failed", err)
			}
			if _, err := l.Append(makeBatch(1, 1, 1)); !errors.Is(err, wlog.ErrFailed) {
				t.Fatalf("append: %v, want failed", err)
			}
			if _, err := l.Read(0, 100, 100); err != nil {
				t.Fatalf("reads still work: %v", err)
			}
			if err := l.Close(); !errors.Is(err, wlog.ErrFailed) {
				t.Fatalf("close: %v", err)
			}
			cfg.FS = fs.Crash(nil)
			l = mustOpen(t, cfg)
			defer l.Close()
			if l.EndOffset() < synced {
				t.Fatalf("lost synced data: end %d < %d", l.EndOffset(), synced)
			}
			equalBatches(t, readAll(t, l), m.prefix(l.EndOffset()))
		})
	}
}

func TestFailedRollLeavesTheLogUsable(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 300
	l := mustOpen(t, cfg)
	defer l.Close()
	var m model
	m.append(t, l, makeBatch(1, 150, 1))
	fs.SetFault(logtest.FailNth(logtest.OpOpen, ".log", 1, nil))
	if _, err := l.Append(makeBatch(1, 150, 1)); !errors.Is(err, logtest.ErrInjected) {
		t.Fatalf("append needing a roll: %v", err)
	}
	m.append(t, l, makeBatch(1, 150, 1))
	equalBatches(t, readAll(t, l), m.batches)
}

func TestCheckpointFailureDuringSyncIsNotFatal(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 300
	l := mustOpen(t, cfg)
	var m model
	for range 4 {
		m.append(t, l, makeBatch(1, 150, 1))
	}
	fs.SetFault(logtest.FailAlways(logtest.OpRename, "log.checkpoint", nil))
	if f, err := l.Sync(); err != nil || f != m.next {
		t.Fatalf("sync: %d, %v", f, err)
	}
	m.append(t, l, makeBatch(1, 150, 1))
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(nil)
	checkRecovered(t, memConfig(fs.Crash(nil)), m.batches)
}

func TestReadsAndAppendsProceedWhileSyncWaitsOnTheDisk(t *testing.T) {
	fs := newMem()
	l := mustOpen(t, memConfig(fs))
	defer l.Close()
	var m model
	m.append(t, l, makeBatch(1, 10, 1))
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fs.SetFault(func(op logtest.Op, path string) error {
		if op == logtest.OpSync {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil
	})
	done := make(chan int64)
	go func() {
		f, err := l.Sync()
		if err != nil {
			t.Error(err)
		}
		done <- f
	}()
	<-entered
	ok := make(chan struct{})
	go func() {
		defer close(ok)
		m.append(t, l, makeBatch(1, 10, 2))
		if _, err := l.Read(0, l.EndOffset(), 1000); err != nil {
			t.Error(err)
		}
		_ = l.EndOffset() + l.StartOffset() + l.FlushedOffset() + l.Size()
	}()
	select {
	case <-ok:
	case <-time.After(5 * time.Second):
		t.Fatal("append or read blocked behind an fsync")
	}
	close(release)
	if f := <-done; f != 1 {
		t.Fatalf("sync flushed to %d, want 1: it covers what was appended before it began", f)
	}
	fs.SetFault(nil)
	if f, err := l.Sync(); err != nil || f != 2 {
		t.Fatalf("second sync: %d, %v", f, err)
	}
}

func TestConcurrentAppendsReadsSyncsAndRetention(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 4000
	cfg.IndexIntervalBytes = 500
	cfg.RetentionBytes = 20000
	l := mustOpen(t, cfg)
	const n = 600
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // appender
		defer wg.Done()
		defer close(stop)
		r := rand.New(rand.NewPCG(1, 2))
		var next int64
		for range n {
			b := randomBatch(r, time.Now().UnixMilli())
			base, err := l.Append(b)
			if err != nil || base != next {
				t.Errorf("append: %d, %v; want %d", base, err, next)
				return
			}
			h, _ := batch.ParseHeader(b)
			next = h.NextOffset()
		}
	}()
	for i := range 3 { // readers
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				start, end := l.StartOffset(), l.EndOffset()
				if end == start {
					continue
				}
				off := start + r.Int64N(end-start)
				b, err := l.Read(off, end, 1+r.IntN(8000))
				if errors.Is(err, wlog.ErrOffsetOutOfRange) {
					continue // retention moved the start meanwhile
				}
				if err != nil {
					t.Errorf("read at %d: %v", off, err)
					return
				}
				for len(b) > 0 {
					h, err := batch.Validate(b[:min(len(b), sizeOf(b))])
					if err != nil || (h.BaseOffset > off && len(b) == 0) {
						t.Errorf("read at %d returned a bad batch: %v", off, err)
						return
					}
					off = h.NextOffset()
					b = b[h.Size():]
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // syncer and retention
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if f, err := l.Sync(); err != nil || f > l.EndOffset() {
				t.Errorf("sync: %d, %v", f, err)
				return
			}
			if _, err := l.EnforceRetention(noLimit); err != nil {
				t.Errorf("retention: %v", err)
				return
			}
			l.OffsetForTimestamp(0)
		}
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, cfg)
	defer l.Close()
	if l.EndOffset() == 0 || l.StartOffset() == 0 {
		t.Fatalf("after reopen start %d end %d", l.StartOffset(), l.EndOffset())
	}
	readAll(t, l)
}

func TestIndexFileWriteFailureAtRollIsNotFatal(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 1100 // four batches of about 260 bytes
	cfg.IndexIntervalBytes = 100
	l := mustOpen(t, cfg)
	var m model
	// The first segment's largest timestamp comes early, so only its time
	// index records it. Sealing that segment tears its time index to a
	// valid-looking prefix that lacks it.
	fs.SetTornWrites(true)
	fs.SetFault(logtest.FailNth(logtest.OpWrite, ".timeindex", 1, nil))
	for _, ts := range []int64{1, 50, 2, 3, 4, 5, 6, 7, 8} {
		m.append(t, l, makeBatch(1, 200, ts))
	}
	fs.SetFault(nil)
	if f, err := l.Sync(); err != nil || f != m.next {
		t.Fatalf("sync: %d, %v", f, err)
	}
	check := func(cfg wlog.Config) {
		t.Helper()
		l := mustOpen(t, cfg)
		defer l.Close()
		equalBatches(t, readAll(t, l), m.batches)
		if off, _, ok := l.OffsetForTimestamp(50); !ok || off != 1 {
			t.Fatalf("timestamp 50 found at %d (%v), want 1: a torn index was trusted", off, ok)
		}
	}
	cfg.FS = fs.Crash(nil)
	check(cfg)
	cfg.FS = fs
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	check(cfg)
}
