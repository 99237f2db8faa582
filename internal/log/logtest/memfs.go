// Package logtest provides a fault-injecting, crash-simulating in-memory
// file system for tests of the partition log and of the packages above it.
package logtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	wlog "github.com/weir-broker/weir/internal/log"
)

// MemFS is an in-memory wlog.FS that models what survives a power loss:
// file contents as of each file's last Sync, and directory entries as of
// the last SyncDir of their directory. Directories themselves are durable
// as soon as they exist. It is safe for concurrent use.
//
// Crash returns the file system a machine would find after losing power;
// Clone returns what a process killed with SIGKILL leaves (everything
// written). SetFault makes chosen operations fail; Cut and FlipByte damage
// files directly.
type MemFS struct {
	mu         sync.Mutex
	now        func() time.Time
	names      map[string]*inode // the namespace as the running system sees it
	durable    map[string]*inode // the namespace as the disk has it
	dirs       map[string]bool
	fault      Fault
	tornWrites bool
	ops        map[Op]int
}

type inode struct {
	data    []byte
	synced  []byte // contents at the last Sync; nil if never synced
	modTime time.Time
}

// NewMemFS returns an empty file system with a root directory.
func NewMemFS() *MemFS {
	return &MemFS{
		now:     time.Now,
		names:   map[string]*inode{},
		durable: map[string]*inode{},
		dirs:    map[string]bool{"/": true, ".": true},
		ops:     map[Op]int{},
	}
}

// SetClock sets the clock used for file modification times.
func (fs *MemFS) SetClock(now func() time.Time) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.now = now
}

// SetFault installs f, consulted before every operation; nil removes it.
func (fs *MemFS) SetFault(f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.fault = f
}

// SetTornWrites makes a write that fails by injection first write half of
// its bytes, as a full disk or a crash mid-write can.
func (fs *MemFS) SetTornWrites(on bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.tornWrites = on
}

// Ops returns how many operations of a kind were attempted.
func (fs *MemFS) Ops(op Op) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.ops[op]
}

// check counts an operation and consults the fault. It is called without
// fs.mu held, so a fault may block to hold an operation in progress.
func (fs *MemFS) check(op Op, path string) error {
	fs.mu.Lock()
	fs.ops[op]++
	fault := fs.fault
	fs.mu.Unlock()
	if fault == nil {
		return nil
	}
	if err := fault(op, path); err != nil {
		return &os.PathError{Op: string(op), Path: path, Err: err}
	}
	return nil
}

func clean(p string) string { return filepath.Clean(p) }

func notExist(op, path string) error {
	return &os.PathError{Op: op, Path: path, Err: os.ErrNotExist}
}

// OpenFile implements wlog.FS.
func (fs *MemFS) OpenFile(name string, flag int, perm os.FileMode) (wlog.File, error) {
	name = clean(name)
	if err := fs.check(OpOpen, name); err != nil {
		return nil, err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.dirs[filepath.Dir(name)] {
		return nil, notExist("open", name)
	}
	if fs.dirs[name] {
		return nil, &os.PathError{Op: "open", Path: name, Err: errors.New("is a directory")}
	}
	ino, ok := fs.names[name]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, notExist("open", name)
	case !ok:
		ino = &inode{modTime: fs.now()}
		fs.names[name] = ino
	}
	if flag&os.O_TRUNC != 0 {
		ino.data = nil
		ino.modTime = fs.now()
	}
	return &memFile{fs: fs, ino: ino, name: name, flag: flag}, nil
}

// Remove implements wlog.FS. Open handles keep the data, as on Unix.
func (fs *MemFS) Remove(name string) error {
	name = clean(name)
	if err := fs.check(OpRemove, name); err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if _, ok := fs.names[name]; !ok {
		return notExist("remove", name)
	}
	delete(fs.names, name)
	return nil
}

// Rename implements wlog.FS.
func (fs *MemFS) Rename(oldpath, newpath string) error {
	oldpath, newpath = clean(oldpath), clean(newpath)
	if err := fs.check(OpRename, newpath); err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, ok := fs.names[oldpath]
	if !ok {
		return notExist("rename", oldpath)
	}
	if !fs.dirs[filepath.Dir(newpath)] {
		return notExist("rename", newpath)
	}
	delete(fs.names, oldpath)
	fs.names[newpath] = ino
	return nil
}

// MkdirAll implements wlog.FS.
func (fs *MemFS) MkdirAll(path string, perm os.FileMode) error {
	path = clean(path)
	if err := fs.check(OpMkdir, path); err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for p := path; !fs.dirs[p]; p = filepath.Dir(p) {
		if _, ok := fs.names[p]; ok {
			return &os.PathError{Op: "mkdir", Path: p, Err: os.ErrExist}
		}
		fs.dirs[p] = true
	}
	return nil
}

// ReadDir implements wlog.FS.
func (fs *MemFS) ReadDir(dir string) ([]string, error) {
	dir = clean(dir)
	if err := fs.check(OpReadDir, dir); err != nil {
		return nil, err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.dirs[dir] {
		return nil, notExist("readdir", dir)
	}
	var names []string
	for p := range fs.names {
		if filepath.Dir(p) == dir {
			names = append(names, filepath.Base(p))
		}
	}
	for p := range fs.dirs {
		if p != dir && filepath.Dir(p) == dir {
			names = append(names, filepath.Base(p))
		}
	}
	slices.Sort(names)
	return names, nil
}

// Stat implements wlog.FS.
func (fs *MemFS) Stat(name string) (os.FileInfo, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	name = clean(name)
	if fs.dirs[name] {
		return fileInfo{name: filepath.Base(name), dir: true}, nil
	}
	ino, ok := fs.names[name]
	if !ok {
		return nil, notExist("stat", name)
	}
	return fileInfo{name: filepath.Base(name), size: int64(len(ino.data)), modTime: ino.modTime}, nil
}

// SyncDir implements wlog.FS: the entries of dir become durable as they are.
func (fs *MemFS) SyncDir(dir string) error {
	dir = clean(dir)
	if err := fs.check(OpSyncDir, dir); err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.dirs[dir] {
		return notExist("syncdir", dir)
	}
	for p := range fs.durable {
		if filepath.Dir(p) == dir {
			delete(fs.durable, p)
		}
	}
	for p, ino := range fs.names {
		if filepath.Dir(p) == dir {
			fs.durable[p] = ino
		}
	}
	return nil
}

// Crash returns the file system as it would be found after a power loss:
// the durable directory entries, each file holding what its last Sync
// wrote. keep, if not nil, says how many bytes of a file's unsynced tail
// (bytes appended after the synced contents) reached the disk anyway; it
// gets the path and the tail's length and returns a count in [0, n]. The
// result shares nothing with fs; fs itself is left as it was.
func (fs *MemFS) Crash(keep func(path string, n int) int) *MemFS {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := fs.emptyCopyLocked()
	copied := map[*inode]*inode{}
	for p, ino := range fs.durable {
		c, ok := copied[ino]
		if !ok {
			data := slices.Clone(ino.synced)
			if tail := len(ino.data) - len(ino.synced); keep != nil && tail > 0 && bytes.HasPrefix(ino.data, ino.synced) {
				k := min(max(keep(p, tail), 0), tail)
				data = append(data, ino.data[len(ino.synced):len(ino.synced)+k]...)
			}
			c = &inode{data: data, synced: slices.Clone(data), modTime: ino.modTime}
			copied[ino] = c
		}
		out.names[p] = c
		out.durable[p] = c
	}
	return out
}

// Clone returns the file system as a process killed with SIGKILL leaves
// it: everything written, synced or not, stays; only what reached the disk
// is durable in the copy. The result shares nothing with fs.
func (fs *MemFS) Clone() *MemFS {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := fs.emptyCopyLocked()
	copied := map[*inode]*inode{}
	cp := func(ino *inode) *inode {
		c, ok := copied[ino]
		if !ok {
			c = &inode{data: slices.Clone(ino.data), modTime: ino.modTime}
			if ino.synced != nil {
				c.synced = slices.Clone(ino.synced)
			}
			copied[ino] = c
		}
		return c
	}
	for p, ino := range fs.names {
		out.names[p] = cp(ino)
	}
	for p, ino := range fs.durable {
		out.durable[p] = cp(ino)
	}
	return out
}

func (fs *MemFS) emptyCopyLocked() *MemFS {
	out := NewMemFS()
	out.now = fs.now
	for d := range fs.dirs {
		out.dirs[d] = true
	}
	return out
}

// ReadFile returns a copy of a file's contents.
func (fs *MemFS) ReadFile(name string) ([]byte, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, ok := fs.names[clean(name)]
	if !ok {
		return nil, notExist("read", name)
	}
	return slices.Clone(ino.data), nil
}

// WriteFile creates or replaces a file, durably.
func (fs *MemFS) WriteFile(name string, data []byte) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	name = clean(name)
	if !fs.dirs[filepath.Dir(name)] {
		return notExist("write", name)
	}
	ino := &inode{data: slices.Clone(data), synced: slices.Clone(data), modTime: fs.now()}
	fs.names[name] = ino
	fs.durable[name] = ino
	return nil
}

// Cut shortens a file to size bytes on the disk and in the page cache
// alike, as damage from outside the program would.
func (fs *MemFS) Cut(name string, size int64) error {
	return fs.damage(name, func(b []byte) []byte {
		if int64(len(b)) > size {
			return b[:size]
		}
		return b
	})
}

// FlipByte inverts the bits of the byte at off, on disk and in the cache.
func (fs *MemFS) FlipByte(name string, off int64) error {
	return fs.damage(name, func(b []byte) []byte {
		if off < int64(len(b)) {
			b[off] ^= 0xff
		}
		return b
	})
}

func (fs *MemFS) damage(name string, f func([]byte) []byte) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, ok := fs.names[clean(name)]
	if !ok {
		return notExist("damage", name)
	}
	ino.data = f(ino.data)
	if ino.synced != nil {
		ino.synced = f(ino.synced)
	}
	return nil
}

// List returns the names in dir whose name ends with suffix.
func (fs *MemFS) List(dir, suffix string) []string {
	names, _ := fs.ReadDir(dir)
	return slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, suffix) })
}

// memFile is an open handle on an inode.
type memFile struct {
	fs     *MemFS
	ino    *inode
	name   string
	flag   int
	pos    int64
	closed bool
}

var errClosed = errors.New("file already closed")

func (f *memFile) access(op Op, write bool) error {
	if f.closed {
		return &os.PathError{Op: string(op), Path: f.name, Err: errClosed}
	}
	acc := f.flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	if write && acc == os.O_RDONLY || !write && acc == os.O_WRONLY {
		return &os.PathError{Op: string(op), Path: f.name, Err: errors.New("bad file descriptor")}
	}
	return nil
}

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	if err := f.fs.check(OpRead, f.name); err != nil {
		return 0, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.access(OpRead, false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("logtest: negative offset %d", off)
	}
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.ino.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(b []byte) (int, error) {
	ferr := f.fs.check(OpWrite, f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.access(OpWrite, true); err != nil {
		return 0, err
	}
	if ferr != nil {
		if f.fs.tornWrites {
			return f.writeLocked(b[:len(b)/2]), ferr
		}
		return 0, ferr
	}
	return f.writeLocked(b), nil
}

func (f *memFile) writeLocked(b []byte) int {
	if f.flag&os.O_APPEND != 0 {
		f.pos = int64(len(f.ino.data))
	}
	if end := f.pos + int64(len(b)); end > int64(len(f.ino.data)) {
		f.ino.data = append(f.ino.data, make([]byte, end-int64(len(f.ino.data)))...)
	}
	copy(f.ino.data[f.pos:], b)
	f.pos += int64(len(b))
	f.ino.modTime = f.fs.now()
	return len(b)
}

func (f *memFile) Sync() error {
	if err := f.fs.check(OpSync, f.name); err != nil {
		return err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &os.PathError{Op: "sync", Path: f.name, Err: errClosed}
	}
	f.ino.synced = append(make([]byte, 0, len(f.ino.data)), f.ino.data...)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	if err := f.fs.check(OpTruncate, f.name); err != nil {
		return err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.access(OpTruncate, true); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("logtest: negative size %d", size)
	}
	if size <= int64(len(f.ino.data)) {
		f.ino.data = f.ino.data[:size:size]
	} else {
		f.ino.data = append(f.ino.data, make([]byte, size-int64(len(f.ino.data)))...)
	}
	f.ino.modTime = f.fs.now()
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &os.PathError{Op: "close", Path: f.name, Err: errClosed}
	}
	f.closed = true
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return nil, &os.PathError{Op: "stat", Path: f.name, Err: errClosed}
	}
	return fileInfo{name: filepath.Base(f.name), size: int64(len(f.ino.data)), modTime: f.ino.modTime}, nil
}

type fileInfo struct {
	name    string
	size    int64
	modTime time.Time
	dir     bool
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) ModTime() time.Time { return fi.modTime }
func (fi fileInfo) IsDir() bool        { return fi.dir }
func (fi fileInfo) Sys() any           { return nil }
func (fi fileInfo) Mode() os.FileMode {
	if fi.dir {
		return os.ModeDir | 0o755
	}
	return 0o644
}
