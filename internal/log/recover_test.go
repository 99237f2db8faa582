package log_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// lastSegment returns the path of the segment with the highest base.
func lastSegment(fs *logtest.MemFS) string {
	names := fs.List(dir, ".log")
	return filepath.Join(dir, names[len(names)-1])
}

// checkRecovered opens fs and asserts the log holds exactly want and
// appends continue at the right offset.
func checkRecovered(t *testing.T, cfg wlog.Config, want [][]byte) {
	t.Helper()
	l := mustOpen(t, cfg)
	defer l.Close()
	equalBatches(t, readAll(t, l), want)
	var next int64
	if len(want) > 0 {
		h, _ := batch.ParseHeader(want[len(want)-1])
		next = h.NextOffset()
	}
	if l.EndOffset() != next {
		t.Fatalf("end offset %d, want %d", l.EndOffset(), next)
	}
	if base, err := l.Append(makeBatch(1, 5, 1)); err != nil || base != next {
		t.Fatalf("next append got %d, %v; want %d", base, err, next)
	}
}

func TestRecoveryAtEveryCutPointOfTheLastBatch(t *testing.T) {
	for _, inNewSegment := range []bool{false, true} {
		t.Run(fmt.Sprintf("last batch starts a segment=%v", inNewSegment), func(t *testing.T) {
			fs := newMem()
			cfg := memConfig(fs)
			cfg.SegmentBytes = 2000
			cfg.IndexIntervalBytes = 100
			l := mustOpen(t, cfg)
			var m model
			for i := range 8 {
				m.append(t, l, makeBatch(2, 50+i, int64(i)))
			}
			if _, err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			last := makeBatch(3, 120, 99)
			if inNewSegment {
				last = makeBatch(3, 600, 99)
			}
			segsBefore := len(fs.List(dir, ".log"))
			m.append(t, l, last)
			if rolled := len(fs.List(dir, ".log")) > segsBefore; rolled != inNewSegment {
				t.Fatalf("rolled=%v", rolled)
			}
			path := lastSegment(fs)
			full, _ := fs.ReadFile(path)
			prefix := len(full) - len(last)
			for k := 0; k <= len(last); k++ {
				crashed := fs.Clone()
				if err := crashed.Cut(path, int64(prefix+k)); err != nil {
					t.Fatal(err)
				}
				c := cfg
				c.FS = crashed
				want := m.batches[:len(m.batches)-1]
				if k == len(last) {
					want = m.batches
				}
				checkRecovered(t, c, want)
			}
		})
	}
}

func TestFlippedByteInTheTailBatchIsTruncated(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	l := mustOpen(t, cfg)
	var m model
	for i := range 4 {
		m.append(t, l, makeBatch(2, 40, int64(i)))
	}
	last := makeBatch(2, 40, 9)
	m.append(t, l, last)
	path := lastSegment(fs)
	full, _ := fs.ReadFile(path)
	start := len(full) - len(last)
	for i := range len(last) {
		if i >= 12 && i < 16 {
			// The partition leader epoch lies outside the CRC by design
			// (a leader rewrites it), so damage there is undetectable.
			continue
		}
		crashed := fs.Clone()
		if err := crashed.FlipByte(path, int64(start+i)); err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.FS = crashed
		checkRecovered(t, c, m.batches[:len(m.batches)-1])
	}
}

func TestRecoveryDeletesSegmentsAfterATornOne(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 600
	l := mustOpen(t, cfg)
	var m model
	for range 12 {
		// Current timestamps, so that reopening does not roll by age.
		m.append(t, l, makeBatch(1, 150, time.Now().UnixMilli()))
	}
	names := fs.List(dir, ".log")
	if len(names) < 4 {
		t.Fatalf("only %d segments", len(names))
	}
	crashed := fs.Clone() // nothing synced: every segment is scanned
	second := filepath.Join(dir, names[1])
	data, _ := crashed.ReadFile(second)
	if err := crashed.Cut(second, int64(len(data)-10)); err != nil {
		t.Fatal(err)
	}
	cfg.FS = crashed
	var want [][]byte
	var inFirstTwo int64
	for _, n := range names[:2] {
		d, _ := crashed.ReadFile(filepath.Join(dir, n))
		inFirstTwo += int64(len(d))
	}
	var size int64
	for _, b := range m.batches {
		if size+int64(len(b)) > inFirstTwo {
			break
		}
		size += int64(len(b))
		want = append(want, b)
	}
	checkRecovered(t, cfg, want)
	if got := crashed.List(dir, ".log"); len(got) != 2 {
		t.Fatalf("segment files %v after recovery, want the first two", got)
	}
}

func TestSyncedDataSurvivesPowerLossAndNothingLeavesAHole(t *testing.T) {
	for seed := range uint64(150) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			fs := newMem()
			cfg := memConfig(fs)
			cfg.SegmentBytes = int64(1700 + r.IntN(3000))
			cfg.IndexIntervalBytes = 1 + r.IntN(1000)
			var m model
			var synced int64
			for round := range 4 {
				cfg.FS = fs
				l := mustOpen(t, cfg)
				end := l.EndOffset()
				if end < synced {
					t.Fatalf("round %d: end %d below the synced offset %d", round, end, synced)
				}
				want := m.prefix(end)
				equalBatches(t, readAll(t, l), want)
				m.batches, m.next = want, end
				if len(want) > 0 {
					if h, _ := batch.ParseHeader(want[len(want)-1]); h.NextOffset() != end {
						t.Fatalf("end %d is not a batch boundary of what was appended", end)
					}
				}
				for range r.IntN(40) {
					m.append(t, l, randomBatch(r, int64(r.IntN(1000))))
					if r.IntN(5) == 0 {
						f, err := l.Sync()
						if err != nil || f != m.next {
							t.Fatalf("sync: %d, %v; want %d", f, err, m.next)
						}
						synced = f
					}
				}
				if r.IntN(5) == 0 {
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
					synced = m.next
				}
				fs = fs.Crash(func(string, int) int { return 0 })
				if r.IntN(2) == 0 {
					fs = fs.Crash(nil)
				}
				_ = fs
			}
		})
	}
}

func TestTornUnsyncedTailsRecoverToAPrefix(t *testing.T) {
	for seed := range uint64(150) {
		r := rand.New(rand.NewPCG(seed, 7))
		fs := newMem()
		cfg := memConfig(fs)
		cfg.SegmentBytes = int64(1700 + r.IntN(2000))
		cfg.IndexIntervalBytes = 1 + r.IntN(500)
		l := mustOpen(t, cfg)
		var m model
		var synced int64
		for range 5 + r.IntN(40) {
			m.append(t, l, randomBatch(r, int64(r.IntN(1000))))
			if r.IntN(6) == 0 {
				synced, _ = l.Sync()
			}
		}
		crashed := fs.Crash(func(_ string, n int) int { return r.IntN(n + 1) })
		cfg.FS = crashed
		l2 := mustOpen(t, cfg)
		end := l2.EndOffset()
		if end < synced {
			t.Fatalf("seed %d: end %d below synced %d", seed, end, synced)
		}
		equalBatches(t, readAll(t, l2), m.prefix(end))
		l2.Close()
	}
}

func TestKill9KeepsEverythingWritten(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 700
	l := mustOpen(t, cfg)
	var m model
	for i := range 20 {
		m.append(t, l, makeBatch(2, 100, int64(i)))
	}
	cfg.FS = fs.Clone()
	checkRecovered(t, cfg, m.batches)
}

func TestRecoveredDataIsDurableOnceOpenReturns(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 700
	l := mustOpen(t, cfg)
	var m model
	for i := range 20 {
		m.append(t, l, makeBatch(2, 100, int64(i)))
	}
	// Killed before any Sync: the data is only in the page cache.
	cfg.FS = fs.Clone()
	l = mustOpen(t, cfg)
	if l.FlushedOffset() != m.next {
		t.Fatalf("flushed %d after open, want %d", l.FlushedOffset(), m.next)
	}
	// So a power loss now must not take it.
	cfg.FS = cfg.FS.(*logtest.MemFS).Crash(nil)
	checkRecovered(t, cfg, m.batches)
}

func TestOpenRefusesToDropDataBelowTheRecoveryPoint(t *testing.T) {
	damage := map[string]func(fs *logtest.MemFS, path string, size int){
		"cut at a batch boundary": func(fs *logtest.MemFS, path string, size int) { fs.Cut(path, int64(size-len(makeBatch(2, 80, 1)))) },
		"cut inside a batch":      func(fs *logtest.MemFS, path string, size int) { fs.Cut(path, int64(size-7)) },
		"flipped byte":            func(fs *logtest.MemFS, path string, size int) { fs.FlipByte(path, int64(size-3)) },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			fs := newMem()
			cfg := memConfig(fs)
			cfg.SegmentBytes = 1000
			l := mustOpen(t, cfg)
			for i := range 20 {
				if _, err := l.Append(makeBatch(2, 80, int64(i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			path := lastSegment(fs)
			data, _ := fs.ReadFile(path)
			f(fs, path, len(data))
			if _, err := wlog.Open(dir, cfg); !errors.Is(err, batch.ErrCorrupt) {
				t.Fatalf("open after damage below the recovery point: %v, want corrupt", err)
			}
		})
	}
}

func TestDamagedOrMissingIndexFilesAreRebuilt(t *testing.T) {
	damage := map[string]func(fs *logtest.MemFS, path string){
		"missing":    func(fs *logtest.MemFS, path string) { fs.Remove(path) },
		"torn entry": func(fs *logtest.MemFS, path string) { d, _ := fs.ReadFile(path); fs.Cut(path, int64(len(d)-3)) },
		"garbage":    func(fs *logtest.MemFS, path string) { fs.WriteFile(path, bytes.Repeat([]byte{0xa5}, 48)) },
		"zeroes":     func(fs *logtest.MemFS, path string) { fs.WriteFile(path, make([]byte, 48)) },
		"beyond the log": func(fs *logtest.MemFS, path string) {
			fs.WriteFile(path, []byte{0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0, 0, 0})
		},
	}
	for name, f := range damage {
		for _, suffix := range []string{".index", ".timeindex"} {
			t.Run(name+suffix, func(t *testing.T) {
				fs := newMem()
				cfg := memConfig(fs)
				cfg.SegmentBytes = 2000
				cfg.IndexIntervalBytes = 150
				l := mustOpen(t, cfg)
				var m model
				for i := range 30 {
					m.append(t, l, makeBatch(2, 60, int64(100+i)))
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				for _, n := range fs.List(dir, suffix) {
					f(fs, filepath.Join(dir, n))
				}
				l = mustOpen(t, cfg)
				defer l.Close()
				equalBatches(t, readAll(t, l), m.batches)
				for i := range 30 {
					if off, _, ok := l.OffsetForTimestamp(int64(100 + i)); !ok || off != int64(2*i) {
						t.Fatalf("timestamp %d: offset %d ok %v", 100+i, off, ok)
					}
				}
			})
		}
	}
}

func TestUnreadableCheckpointFallsBackToFullRecovery(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	l := mustOpen(t, cfg)
	var m model
	for range 5 {
		m.append(t, l, makeBatch(1, 10, 1))
	}
	l.Close()
	fs.WriteFile(filepath.Join(dir, "log.checkpoint"), []byte("garbage"))
	checkRecovered(t, cfg, m.batches)
}

// FuzzRecover feeds arbitrary bytes to Open as a segment file. Open must
// not fail or panic, and must keep exactly a prefix of the file made of
// valid, dense batches starting at offset 0. With fixCRC set, every
// batch-shaped chunk gets a correct CRC first, so the fuzzer reaches the
// checks behind the CRC (offsets, lengths) instead of stopping at it.
func FuzzRecover(f *testing.F) {
	var valid []byte
	var next int64
	for i := range 4 {
		b := makeBatch(1+i, 10*i, int64(i))
		batch.SetBaseOffset(b, next)
		next += int64(1 + i)
		valid = append(valid, b...)
	}
	f.Add(valid, false)
	f.Add(valid[:len(valid)-1], false)
	f.Add(valid[:70], true)
	f.Add([]byte{}, false)
	f.Add(make([]byte, 200), true)
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		if fixCRC {
			data = fixCRCs(data)
		}
		fs := newMem()
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		seg := filepath.Join(dir, "00000000000000000000.log")
		if err := fs.WriteFile(seg, data); err != nil {
			t.Fatal(err)
		}
		cfg := memConfig(fs)
		cfg.IndexIntervalBytes = 64
		l, err := wlog.Open(dir, cfg)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		kept := l.Size()
		if kept > int64(len(data)) {
			t.Fatalf("kept %d bytes of %d", kept, len(data))
		}
		got, err := l.Read(0, l.EndOffset(), len(data)+1)
		if l.EndOffset() == 0 {
			if kept != 0 || got != nil || err != nil {
				t.Fatalf("empty log: kept %d, read %d bytes, %v", kept, len(got), err)
			}
		} else if err != nil || !bytes.Equal(got, data[:kept]) {
			t.Fatalf("read back %d bytes (%v), want the %d-byte prefix", len(got), err, kept)
		}
		var off int64
		for rest := got; len(rest) > 0; {
			h, err := batch.ParseHeader(rest)
			if err != nil || batch.CheckCRC(rest, h) != nil || h.BaseOffset != off {
				t.Fatalf("kept an invalid batch at offset %d: %v", off, err)
			}
			off = h.NextOffset()
			rest = rest[h.Size():]
		}
		if off != l.EndOffset() {
			t.Fatalf("batches end at %d, log end %d", off, l.EndOffset())
		}
		if base, err := l.Append(makeBatch(1, 3, 1)); err != nil || base != off {
			t.Fatalf("append after recovery: %d, %v", base, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = wlog.Open(dir, cfg)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if l.EndOffset() != off+1 {
			t.Fatalf("reopened at %d, want %d", l.EndOffset(), off+1)
		}
		l.Close()
	})
}

// fixCRCs returns a copy of data in which each chunk that parses as a batch
// header and fits carries a correct CRC.
func fixCRCs(data []byte) []byte {
	data = bytes.Clone(data)
	table := crc32.MakeTable(crc32.Castagnoli)
	for pos := 0; pos+batch.HeaderSize <= len(data); {
		h, err := batch.PeekHeader(data[pos:])
		if err != nil || h.Size() > len(data)-pos {
			break
		}
		b := data[pos : pos+h.Size()]
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], table))
		pos += h.Size()
	}
	return data
}

func TestMissingMiddleSegment(t *testing.T) {
	setup := func(t *testing.T, clean bool) (*logtest.MemFS, wlog.Config, *model, []string) {
		fs := newMem()
		cfg := memConfig(fs)
		cfg.SegmentBytes = 600
		l := mustOpen(t, cfg)
		m := &model{}
		for range 10 {
			m.append(t, l, makeBatch(1, 150, time.Now().UnixMilli()))
		}
		if clean {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			fs = fs.Clone()
		}
		names := fs.List(dir, ".log")
		fs.Remove(filepath.Join(dir, names[1]))
		cfg.FS = fs
		return fs, cfg, m, names
	}
	t.Run("below the recovery point is refused", func(t *testing.T) {
		_, cfg, _, _ := setup(t, true)
		if _, err := wlog.Open(dir, cfg); !errors.Is(err, batch.ErrCorrupt) {
			t.Fatalf("open: %v, want corrupt", err)
		}
	})
	t.Run("after a crash the log ends before the gap", func(t *testing.T) {
		fs, cfg, m, names := setup(t, false)
		first, _ := fs.ReadFile(filepath.Join(dir, names[0]))
		var want [][]byte
		for n := 0; n < len(first); n += len(m.batches[len(want)]) {
			want = append(want, m.batches[len(want)])
		}
		checkRecovered(t, cfg, want)
	})
}
