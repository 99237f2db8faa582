package log_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// crashSeeds is how many random histories
// TestRandomHistoriesOfCrashesRecoverAPrefixOfWhatWasWritten runs; a few
// hundred find what a handful does not.
var crashSeeds = flag.Int("log.crash.seeds", 25, "random crash histories to run")

// crashRun drives a log through random appends, syncs, truncations,
// full truncations, deletions of records and crashes (SIGKILL or power
// loss, with garbage in what was never fsynced), checking after every
// reopen that the log holds exactly a prefix of what was written from
// its start offset, at least up to what was fsynced, and that a read at
// any offset returns the batch holding it.
type crashRun struct {
	t      *testing.T
	r      *rand.Rand
	fs     *logtest.MemFS
	cfg    wlog.Config
	l      *wlog.Log
	start  int64
	bs     [][]byte // batches from the one holding start, as written
	shapes []shape  // of each of bs
	trace  []string
}

func (c *crashRun) logf(format string, args ...any) {
	c.trace = append(c.trace, fmt.Sprintf(format, args...))
}

func (c *crashRun) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("%s\nafter:\n  %s", fmt.Sprintf(format, args...), strings.Join(c.trace, "\n  "))
}

func (c *crashRun) end() int64 {
	if len(c.bs) == 0 {
		return c.start
	}
	h, _ := batch.ParseHeader(c.bs[len(c.bs)-1])
	return h.NextOffset()
}

func (c *crashRun) append() {
	// Few distinct shapes, so that batches written after a truncation
	// often have the sizes and offsets of the ones it removed.
	c.appendShape(shapes[c.r.IntN(len(shapes))])
}

// shape is what fixes a built batch's size: its record count and value
// size.
type shape struct{ n, size int }

var shapes = [...]shape{{1, 200}, {2, 1500}, {1, 40 << 10}, {3, 90 << 10}}

func (c *crashRun) appendShape(sh shape) {
	b := makeBatch(sh.n, sh.size, c.r.Int64N(1<<40))
	base, err := c.l.Append(b)
	if err != nil {
		c.fatalf("append: %v", err)
	}
	if base != c.end() {
		c.fatalf("append at %d, want %d", base, c.end())
	}
	c.bs = append(c.bs, bytes.Clone(b))
	c.shapes = append(c.shapes, sh)
}

// boundaries are the base offsets of the batches at or above start.
func (c *crashRun) boundaries() []int64 {
	var out []int64
	for _, b := range c.bs {
		h, _ := batch.ParseHeader(b)
		if h.BaseOffset >= c.start {
			out = append(out, h.BaseOffset)
		}
	}
	return out
}

func (c *crashRun) cutModel(offset int64) {
	for i, b := range c.bs {
		if h, _ := batch.ParseHeader(b); h.BaseOffset >= offset {
			c.bs, c.shapes = c.bs[:i], c.shapes[:i]
			return
		}
	}
}

func (c *crashRun) dropBelowStart() {
	for len(c.bs) > 0 {
		h, _ := batch.ParseHeader(c.bs[0])
		if h.NextOffset() > c.start {
			return
		}
		c.bs, c.shapes = c.bs[1:], c.shapes[1:]
	}
}

// flip damages one byte of the records of the batch at base, in whatever
// segment file of fs holds it, and reports whether it found the batch.
func flip(fs *logtest.MemFS, base int64) bool {
	for _, name := range fs.List(dir, ".log") {
		path := filepath.Join(dir, name)
		data, _ := fs.ReadFile(path)
		for pos := 0; pos+batch.HeaderSize <= len(data); {
			h, err := batch.PeekHeader(data[pos:])
			if err != nil {
				break
			}
			if h.BaseOffset == base {
				at := pos + batch.HeaderSize + 5
				if at >= len(data) || at >= pos+h.Size() {
					return false
				}
				fs.FlipByte(path, int64(at))
				return true
			}
			pos += h.Size()
		}
	}
	return false
}

func (c *crashRun) crash() {
	flushed := c.l.FlushedOffset()
	written := c.end()
	var fs *logtest.MemFS
	kill := c.r.IntN(2) == 0
	if kill {
		fs = c.fs.Clone()
	} else {
		keepAll := c.r.IntN(2) == 0
		fs = c.fs.Crash(func(_ string, n int) int {
			if keepAll {
				return n
			}
			return c.r.IntN(n + 1)
		})
	}
	// Garbage in a batch that was never fsynced: a torn page-cache write
	// after a SIGKILL, or blocks the disk allocated but never filled.
	limit := written
	if unsynced := c.boundariesFrom(flushed); len(unsynced) > 0 && c.r.IntN(2) == 0 {
		at := unsynced[c.r.IntN(len(unsynced))]
		if flip(fs, at) {
			limit = at
			c.logf("garbage in batch %d", at)
		}
	}
	c.logf("crash (kill=%v) flushed=%d written=%d", kill, flushed, written)
	c.fs = fs
	c.reopen(flushed, limit, kill && limit == written)
}

func (c *crashRun) boundariesFrom(offset int64) []int64 {
	var out []int64
	for _, b := range c.boundaries() {
		if b >= offset {
			out = append(out, b)
		}
	}
	return out
}

// reopen opens the log on c.fs and checks it holds the model's batches
// from start up to an end in [atLeast, atMost], all of them when exact.
func (c *crashRun) reopen(atLeast, atMost int64, exact bool) {
	c.t.Helper()
	// The same disk opened without the tail checkpoint, so that every
	// byte of the active segment is checked: the answers to compare.
	ref := c.fs.Clone()
	ref.Remove(filepath.Join(dir, "tail.checkpoint"))
	cfg := c.cfg
	cfg.FS = ref
	refLog, refErr := wlog.Open(dir, cfg)
	cfg.FS = c.fs
	l, err := wlog.Open(dir, cfg)
	if err != nil {
		c.fatalf("open: %v", err)
	}
	c.l = l
	if refErr == nil {
		c.sameAnswers(refLog)
		refLog.Close()
	}
	if l.StartOffset() != c.start {
		c.fatalf("start %d, want %d", l.StartOffset(), c.start)
	}
	end := l.EndOffset()
	if end < atLeast || end > atMost || exact && end != atMost {
		c.fatalf("end %d after a crash, want in [%d, %d] (exact %v)", end, atLeast, atMost, exact)
	}
	c.cutModel(end)
	if c.end() != end {
		c.fatalf("end %d is not a batch boundary of what was written (model end %d)", end, c.end())
	}
	c.check()
}

// check compares the log with the model: every batch in order, and reads
// at random offsets.
func (c *crashRun) check() {
	c.t.Helper()
	var got [][]byte
	for off := c.l.StartOffset(); off < c.l.EndOffset(); {
		b, err := c.l.Read(off, c.l.EndOffset(), 1)
		if err != nil {
			c.fatalf("read at %d: %v", off, err)
		}
		// Compaction leaves batches with no records, which Validate (a
		// producer's batch) refuses, so check the header and CRC.
		h, err := batch.ParseHeader(b)
		if err == nil {
			err = batch.CheckCRC(b[:h.Size()], h)
		}
		if err != nil {
			c.fatalf("read at %d returned an invalid batch: %v", off, err)
		}
		got = append(got, b[:h.Size()])
		off = h.NextOffset()
	}
	if len(got) != len(c.bs) {
		c.fatalf("log holds %d batches, want %d", len(got), len(c.bs))
	}
	for i := range got {
		if !bytes.Equal(got[i], c.bs[i]) {
			h, _ := batch.ParseHeader(c.bs[i])
			c.fatalf("batch %d (offset %d) differs from what was written", i, h.BaseOffset)
		}
	}
	for range 5 {
		if len(c.bs) == 0 {
			break
		}
		b := c.bs[c.r.IntN(len(c.bs))]
		h, _ := batch.ParseHeader(b)
		off := max(c.start, h.BaseOffset+c.r.Int64N(int64(h.LastOffsetDelta)+1))
		data, err := c.l.Read(off, c.l.EndOffset(), 1)
		if err != nil || len(data) < len(b) || !bytes.Equal(data[:len(b)], b) {
			c.fatalf("read at %d does not return the batch at %d (err %v)", off, h.BaseOffset, err)
		}
	}
}

func (c *crashRun) step() {
	switch k := c.r.IntN(20); {
	case k < 9:
		n := 1 + c.r.IntN(6)
		for range n {
			c.append()
		}
		c.logf("append %d -> end %d", n, c.end())
	case k < 13:
		f, err := c.l.Sync()
		if err != nil || f != c.end() {
			c.fatalf("sync: %d, %v; want %d", f, err, c.end())
		}
		c.logf("sync %d", f)
	case k < 15:
		bs := c.boundaries()
		if len(bs) == 0 {
			return
		}
		at := bs[c.r.IntN(len(bs))]
		if err := c.l.Truncate(at); err != nil {
			c.fatalf("truncate %d: %v", at, err)
		}
		before := len(c.shapes)
		removed := c.shapes[:before]
		c.cutModel(at)
		removed = slices.Clone(removed[len(c.shapes):])
		c.logf("truncate %d", at)
		if c.r.IntN(2) == 0 {
			// A follower fetches the leader's batches, which often have
			// the shapes of the ones it removed.
			for _, sh := range removed {
				if sh.n > 0 {
					c.appendShape(sh)
				}
			}
			c.logf("append %d of the removed shapes -> end %d", len(removed), c.end())
		}
	case k == 15:
		at := c.end() + int64(c.r.IntN(3))
		switch c.r.IntN(3) {
		case 0:
			at = c.start + c.r.Int64N(c.end()-c.start+1)
		case 1:
			at = c.start // where a one-segment log's tail checkpoint points
		}
		if err := c.l.TruncateFullyAndStartAt(at); err != nil {
			c.fatalf("truncate fully at %d: %v", at, err)
		}
		removed := c.shapes
		c.bs, c.shapes, c.start = nil, nil, at
		c.logf("truncate fully at %d", at)
		if c.r.IntN(2) == 0 {
			// The leader's batches from here often have the shapes of
			// the removed ones.
			for _, sh := range removed {
				if sh.n > 0 {
					c.appendShape(sh)
				}
			}
			c.logf("append %d of the removed shapes -> end %d", len(removed), c.end())
		}
	case k == 16:
		flushed := c.l.FlushedOffset()
		if flushed <= c.start {
			return
		}
		at := c.start + c.r.Int64N(flushed-c.start+1)
		if err := c.l.DeleteRecordsBefore(at); err != nil {
			c.fatalf("delete records before %d: %v", at, err)
		}
		c.start = max(c.start, at)
		c.dropBelowStart()
		c.logf("delete records before %d", at)
	case k == 17 && c.r.IntN(3) == 0:
		// Retention by time (every batch is old): the active segment
		// rolls and the expired ones below what is fsynced go.
		n, err := c.l.EnforceRetention(c.l.FlushedOffset())
		if err != nil {
			c.fatalf("retention: %v", err)
		}
		c.start = c.l.StartOffset()
		c.dropBelowStart()
		c.logf("retention deleted %d segments, start %d", n, c.start)
	case k == 17 && c.r.IntN(2) == 0:
		// Compaction rewrites the sealed, fsynced segments.
		st, err := c.l.Compact(time.Now(), 0, wlog.TxnOutcomes{StableOffset: math.MaxInt64})
		if err != nil {
			c.fatalf("compact: %v", err)
		}
		c.bs, c.shapes = nil, nil
		for off := c.l.StartOffset(); off < c.l.EndOffset(); {
			b, err := c.l.Read(off, c.l.EndOffset(), 1)
			if err != nil {
				c.fatalf("read after compaction: %v", err)
			}
			h, _ := batch.ParseHeader(b)
			c.bs = append(c.bs, bytes.Clone(b[:h.Size()]))
			c.shapes = append(c.shapes, shape{})
			off = h.NextOffset()
		}
		c.logf("compaction rewrote %d segments", st.Segments)
	case k == 17:
		if err := c.l.Close(); err != nil {
			c.fatalf("close: %v", err)
		}
		c.logf("close")
		c.reopen(c.end(), c.end(), true)
	case k == 18 && c.r.IntN(2) == 0:
		c.crashDuring()
	default:
		c.crash()
	}
}

// powerLossAt makes c.fs lose power at its n-th mutating operation from
// now on and returns where the file system as found afterwards will be.
func (c *crashRun) powerLossAt(n int) **logtest.MemFS {
	var crashed *logtest.MemFS
	ops := 0
	fs := c.fs
	half := c.r.IntN(2) == 0
	fs.SetFault(func(op logtest.Op, path string) error {
		if crashed != nil {
			return errors.New("power lost")
		}
		if op == logtest.OpRead || op == logtest.OpReadDir {
			return nil
		}
		ops++
		if ops == n {
			crashed = fs.Crash(func(_ string, tail int) int {
				if half {
					return tail / 2
				}
				return tail
			})
			return errors.New("power lost")
		}
		return nil
	})
	return &crashed
}

// crashDuring loses power part way through a truncation, a full
// truncation, a sync or a reopen, and checks what the next Open finds.
func (c *crashRun) crashDuring() {
	flushed := c.l.FlushedOffset()
	written := c.end()
	n := 1 + c.r.IntN(12)
	crashed := c.powerLossAt(n)
	fully := int64(-1)
	switch c.r.IntN(4) {
	case 0:
		bs := c.boundaries()
		if len(bs) == 0 {
			c.fs.SetFault(nil)
			return
		}
		at := bs[c.r.IntN(len(bs))]
		c.l.Truncate(at)
		flushed = min(flushed, at)
		c.logf("power loss at op %d of truncate %d", n, at)
	case 1:
		fully = c.end() + int64(c.r.IntN(3))
		c.l.TruncateFullyAndStartAt(fully)
		c.logf("power loss at op %d of truncate fully at %d", n, fully)
	case 2:
		c.l.Sync()
		c.logf("power loss at op %d of sync", n)
	default:
		// Power lost while the reopened log recovers a SIGKILL.
		cfg := c.cfg
		killed := c.fs.Clone()
		crashedOpen := (&crashRun{fs: killed, r: c.r}).powerLossAt(n)
		cfg.FS = killed
		if l, err := wlog.Open(dir, cfg); err == nil && *crashedOpen == nil {
			killed.SetFault(nil)
			c.fs.SetFault(nil)
			c.fs, c.l = killed, l
			c.logf("kill, then open with no power loss in %d ops", n)
			c.reopenChecked(written, written, true)
			return
		}
		crashed = crashedOpen
		c.logf("kill, then power loss at op %d of open", n)
	}
	c.fs.SetFault(nil)
	if *crashed == nil {
		// The operation finished before the n-th operation: lose power
		// now.
		*crashed = c.fs.Crash(nil)
		c.logf("(operation finished; power lost after it)")
	}
	c.fs = *crashed
	if fully >= 0 {
		cfg := c.cfg
		cfg.FS = c.fs
		l, err := wlog.Open(dir, cfg)
		if err != nil {
			c.fatalf("open: %v", err)
		}
		if l.StartOffset() == fully && l.EndOffset() == fully {
			c.l = l
			c.bs, c.shapes, c.start = nil, nil, fully
			c.check()
			return
		}
		l.Close()
		flushed = c.start // any prefix of the old log
	}
	c.reopen(flushed, written, false)
}

// reopenChecked checks the log c.l already opened, as reopen does.
func (c *crashRun) reopenChecked(atLeast, atMost int64, exact bool) {
	c.t.Helper()
	end := c.l.EndOffset()
	if c.l.StartOffset() != c.start {
		c.fatalf("start %d, want %d", c.l.StartOffset(), c.start)
	}
	if end < atLeast || end > atMost || exact && end != atMost {
		c.fatalf("end %d after a crash, want in [%d, %d] (exact %v)", end, atLeast, atMost, exact)
	}
	c.cutModel(end)
	c.check()
}

// Whatever mix of appends, syncs, follower truncations, full
// truncations, record deletions, clean restarts, SIGKILLs and power
// losses a log goes through, each reopen holds exactly what was written
// from the log start, at least up to what was fsynced, never a batch
// that was damaged before it was fsynced, and a read at any offset
// returns the batch that holds it: no tail checkpoint left from an
// earlier state vouches for bytes written later.
func TestRandomHistoriesOfCrashesRecoverAPrefixOfWhatWasWritten(t *testing.T) {
	for seed := range uint64(*crashSeeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1234))
			fs := newMem()
			cfg := memConfig(fs)
			cfg.SegmentBytes = int64(1<<20 + r.IntN(3<<20))
			cfg.IndexIntervalBytes = 1 + r.IntN(8<<10)
			cfg.RetentionMs = 1
			c := &crashRun{t: t, r: r, fs: fs, cfg: cfg}
			c.l = mustOpen(t, cfg)
			for range 60 {
				c.step()
			}
			c.l.Close()
		})
	}
}

// sameAnswers compares c.l with ref, the same disk recovered with every
// batch checked: offsets, the largest timestamp and lookups by timestamp.
func (c *crashRun) sameAnswers(ref *wlog.Log) {
	c.t.Helper()
	if ref.StartOffset() != c.l.StartOffset() || ref.EndOffset() != c.l.EndOffset() {
		c.fatalf("recovered [%d, %d); with every batch checked [%d, %d)", c.l.StartOffset(), c.l.EndOffset(), ref.StartOffset(), ref.EndOffset())
	}
	ro, rt := ref.MaxTimestamp()
	if o, ts := c.l.MaxTimestamp(); o != ro || ts != rt {
		c.fatalf("max timestamp %d at %d; with every batch checked %d at %d", ts, o, rt, ro)
	}
	for range 5 {
		ts := c.r.Int64N(1 << 40)
		ro, rt, rok := ref.OffsetForTimestamp(ts)
		if o, t, ok := c.l.OffsetForTimestamp(ts); o != ro || t != rt || ok != rok {
			c.fatalf("offset for timestamp %d: %d %d %v; with every batch checked %d %d %v", ts, o, t, ok, ro, rt, rok)
		}
	}
}

// A tail checkpoint that cannot be read only costs a longer scan (see the
// tailCheckpoint doc): whatever is in the file, Open recovers the log by
// checking the whole active segment. Here the file is longer than a
// checkpoint (damage, or a later format left by a newer version); Open
// must still succeed with every batch, not refuse the partition.
func TestOversizedTailCheckpointOnlyCostsAFullCheck(t *testing.T) {
	fs := newMem()
	l := mustOpen(t, memConfig(fs))
	var m model
	for i := range 10 {
		m.append(t, l, makeBatch(1, 1000, int64(i)))
	}
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	killed := fs.Clone()
	name := filepath.Join(dir, "tail.checkpoint")
	b, err := killed.ReadFile(name)
	if err != nil {
		t.Fatalf("no tail checkpoint after a sync: %v", err)
	}
	if err := killed.WriteFile(name, append(b, make([]byte, 64)...)); err != nil {
		t.Fatal(err)
	}
	checkRecovered(t, memConfig(killed), m.batches)
}
