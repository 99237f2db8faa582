package logtest

import (
	"os"
	"strings"
	"sync/atomic"

	wlog "github.com/weir-broker/weir/internal/log"
)

// ReadCountingFS counts the bytes read from segment (.log) files, so a
// test can tell how much of a log an operation (recovery, a replay) read.
type ReadCountingFS struct {
	wlog.FS
	// LogBytes is the bytes read from segment files so far.
	LogBytes atomic.Int64
}

// OpenFile opens name on the wrapped file system, counting a segment
// file's reads.
func (fs *ReadCountingFS) OpenFile(name string, flag int, perm os.FileMode) (wlog.File, error) {
	f, err := fs.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &readCountingFile{File: f, n: &fs.LogBytes}, nil
}

type readCountingFile struct {
	wlog.File
	n *atomic.Int64
}

func (f *readCountingFile) ReadAt(b []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(b, off)
	f.n.Add(int64(n))
	return n, err
}
