package log_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// largeSyncedActiveSegment appends batches of about 64 KiB to one segment,
// fsyncs them, then appends a few more that are not fsynced. It returns
// the file system, the model, the number of fsynced batches and the bytes
// appended after the fsync.
func largeSyncedActiveSegment(t *testing.T) (*logtest.MemFS, *model, int, int64) {
	t.Helper()
	fs := newMem()
	l := mustOpen(t, memConfig(fs))
	var m model
	const synced, unsynced = 160, 3
	// Timestamps of now, so that the segment is young and a reopened log
	// keeps appending to it.
	ts := time.Now().UnixMilli()
	for i := range synced {
		m.append(t, l, makeBatch(1, 64<<10, ts+int64(i)))
	}
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	var tail int64
	for i := range unsynced {
		b := makeBatch(1, 64<<10, ts+int64(synced+i))
		tail += int64(len(b))
		m.append(t, l, b)
	}
	if got := len(fs.List(dir, ".log")); got != 1 {
		t.Fatalf("the log has %d segments, want the data in one active segment", got)
	}
	return fs, &m, synced, tail
}

// After a crash, Open trusts the part of the active segment the last fsync
// covered: it reads that part's batch headers to rebuild the index, and
// reads in full, with CRC checks, only what was written after the fsync.
func TestOpenAfterKillReadsOnlyHeadersOfTheFsyncedPartOfTheActiveSegment(t *testing.T) {
	fs, m, synced, tail := largeSyncedActiveSegment(t)
	counting := &logtest.ReadCountingFS{FS: fs.Clone()}
	l := mustOpen(t, memConfig(counting))
	read := counting.LogBytes.Load()
	// Headers of the fsynced batches, the unsynced tail in full, and the
	// first batch's header read again to start the segment's age.
	limit := int64(synced)*batch.HeaderSize + tail + batch.HeaderSize
	total := l.Size()
	if read > limit {
		t.Errorf("Open read %d bytes of a %d-byte segment; want at most %d (headers of %d fsynced batches and the %d bytes after the fsync)", read, total, limit, synced, tail)
	}
	equalBatches(t, readAll(t, l), m.batches)
	l.Close()
}

// After a power loss only the fsynced part exists, and once the tail
// checkpoint written after the fsync has reached the disk (Sync writes it
// without an fsync of its own; the kernel writes it back within seconds),
// Open reads no more than that part's headers.
func TestOpenAfterPowerLossReadsOnlyHeadersOfTheFsyncedActiveSegment(t *testing.T) {
	fs, m, synced, _ := largeSyncedActiveSegment(t)
	writeBack(t, fs, filepath.Join(dir, "tail.checkpoint"))
	counting := &logtest.ReadCountingFS{FS: fs.Crash(nil)}
	l := mustOpen(t, memConfig(counting))
	read := counting.LogBytes.Load()
	if limit := int64(synced+1) * batch.HeaderSize; read > limit {
		t.Errorf("Open read %d bytes of a %d-byte segment; want at most %d (headers of %d fsynced batches)", read, l.Size(), limit, synced)
	}
	equalBatches(t, readAll(t, l), m.batches[:synced])
	l.Close()
}

// A power loss before the tail checkpoint reached the disk costs only a
// full check of the active segment, never a fsynced batch.
func TestPowerLossBeforeTheTailCheckpointReachedTheDiskKeepsEveryFsyncedBatch(t *testing.T) {
	fs, m, synced, _ := largeSyncedActiveSegment(t)
	checkRecovered(t, memConfig(fs.Crash(nil)), m.batches[:synced])
}

// writeBack makes a file and its directory entry durable, as the kernel's
// background writeback does for data nobody fsynced.
func writeBack(t *testing.T, fs *logtest.MemFS, name string) {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir(filepath.Dir(name)); err != nil {
		t.Fatal(err)
	}
}
