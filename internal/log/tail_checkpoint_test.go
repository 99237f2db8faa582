package log_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
)

// batchesWithin returns the model's batches that lie wholly within the
// first size bytes of a single segment.
func batchesWithin(m *model, size int64) [][]byte {
	var out [][]byte
	var pos int64
	for _, b := range m.batches {
		if pos+int64(len(b)) > size {
			break
		}
		pos += int64(len(b))
		out = append(out, b)
	}
	return out
}

// A tail checkpoint claiming more than the segment holds (the disk lost
// fsynced data) is not trusted: Open checks the whole segment and keeps
// the valid batches. It also replaces the checkpoint durably, so that when
// batches of the same sizes refill the segment past the old claim and a
// power loss tears one of them, the old claim is not there to vouch for it.
func TestTailCheckpointPastTheEndOfTheSegmentFallsBackToAFullCheck(t *testing.T) {
	fs, m, synced, _ := largeSyncedActiveSegment(t)
	writeBack(t, fs, filepath.Join(dir, "tail.checkpoint"))
	killed := fs.Clone()
	seg := lastSegment(killed)
	const cut = 3<<20 + 100
	if err := killed.Cut(seg, cut); err != nil {
		t.Fatal(err)
	}
	want := batchesWithin(m, cut)
	l := mustOpen(t, memConfig(killed))
	if n := len(killed.List(dir, ".log")); n != 1 {
		t.Fatalf("%d segments; the test needs the refill in the same segment", n)
	}
	equalBatches(t, readAll(t, l), want)

	m.batches, m.next = want, int64(len(want))
	for i := len(want); i < synced+3; i++ {
		m.append(t, l, makeBatch(1, 64<<10, time.Now().UnixMilli()))
	}
	const torn = 150
	var pos int64
	for _, b := range m.batches[:torn] {
		pos += int64(len(b))
	}
	if err := killed.FlipByte(seg, pos+batch.HeaderSize+100); err != nil {
		t.Fatal(err)
	}
	keepAll := func(string, int) int { return 1 << 30 }
	if n := len(killed.List(dir, ".log")); n != 1 {
		t.Fatalf("%d segments; the test needs the refill in the same segment", n)
	}
	checkRecovered(t, memConfig(killed.Crash(keepAll)), m.batches[:torn])
	l.Close()
}

// A tail checkpoint whose position is not where the batch headers lead
// (here a damaged length field) is not trusted: Open checks every batch
// and cuts the segment at the damaged one.
func TestTailCheckpointThatDoesNotMatchTheHeadersFallsBackToAFullCheck(t *testing.T) {
	fs, m, _, _ := largeSyncedActiveSegment(t)
	killed := fs.Clone()
	const damaged = 50
	var pos int64
	for _, b := range m.batches[:damaged] {
		pos += int64(len(b))
	}
	if err := killed.FlipByte(lastSegment(killed), pos+9); err != nil { // inside the batch length
		t.Fatal(err)
	}
	checkRecovered(t, memConfig(killed), m.batches[:damaged])
}

// Truncating the log withdraws the tail checkpoint before it cuts, so a
// checkpoint written before the truncation never vouches for what is
// written after it: here the new batches have the same sizes and offsets
// as the removed ones, so an old checkpoint would match their headers, and
// the last of them is torn by a crash; Open must find and cut it.
func TestTruncationWithdrawsTheTailCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name     string
		truncate func(*wlog.Log) error
		kept     int
	}{
		{"Truncate", func(l *wlog.Log) error { return l.Truncate(10) }, 10},
		{"TruncateFullyAndStartAt", func(l *wlog.Log) error { return l.TruncateFullyAndStartAt(0) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newMem()
			l := mustOpen(t, memConfig(fs))
			var m model
			for i := range 20 {
				m.append(t, l, makeBatch(1, 16<<10, int64(i)))
			}
			if _, err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := tc.truncate(l); err != nil {
				t.Fatal(err)
			}
			m.batches, m.next = m.batches[:tc.kept], int64(tc.kept)
			for i := tc.kept; i < 20; i++ {
				m.append(t, l, makeBatch(1, 16<<10, int64(1000+i)))
			}
			killed := fs.Clone()
			var last int64
			for _, b := range m.batches[:19] {
				last += int64(len(b))
			}
			if err := killed.FlipByte(filepath.Join(dir, "00000000000000000000.log"), last+batch.HeaderSize+100); err != nil {
				t.Fatal(err)
			}
			checkRecovered(t, memConfig(killed), m.batches[:19])
		})
	}
}
