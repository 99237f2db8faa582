package log_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/weir-broker/weir/internal/log/logtest"
)

// A log that took no write since its last open is opened again after a
// crash without rewriting its checkpoint: a node of many idle partitions
// would otherwise make one durable write per partition before serving.
// After a clean close the checkpoint is replaced at open, since its
// recovery point (the log end) would let a crash after the next append
// go unscanned; and the records are all there either way.
func TestReopenAfterACrashWithoutWritesLeavesTheCheckpoint(t *testing.T) {
	fs := logtest.NewMemFS()
	l := mustOpen(t, memConfig(fs))
	var m model
	for i := range 3 {
		m.append(t, l, makeBatch(2, 10, int64(i)))
	}
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int32
	count := func(op logtest.Op, path string) error {
		if op == logtest.OpRename && strings.HasSuffix(path, "/log.checkpoint") {
			writes.Add(1)
		}
		return nil
	}
	reopen := func(from *logtest.MemFS) *logtest.MemFS {
		t.Helper()
		from.SetFault(count)
		l := mustOpen(t, memConfig(from))
		if end := l.EndOffset(); end != m.next {
			t.Fatalf("reopened log ends at %d, want %d", end, m.next)
		}
		return from
	}
	// The first open after the crash scans the active segment and moves
	// the recovery point up to it; the next crash and open find nothing
	// to change.
	crashed := reopen(fs.Crash(nil))
	before := writes.Load()
	reopen(crashed.Crash(nil))
	if n := writes.Load() - before; n != 0 {
		t.Fatalf("a reopen after a crash with nothing written since the last open wrote the checkpoint %d times", n)
	}

	clean := logtest.NewMemFS()
	l = mustOpen(t, memConfig(clean))
	m = model{}
	m.append(t, l, makeBatch(2, 10, 0))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	before = writes.Load()
	reopen(clean)
	if n := writes.Load() - before; n != 1 {
		t.Fatalf("a reopen after a clean close wrote the checkpoint %d times, want once", n)
	}
}
