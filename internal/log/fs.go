package log

import (
	"io"
	"os"
	"path/filepath"
	"sort"
)

// FS is the file-system seam under the log. The log performs every file
// operation through it, so tests can substitute a file system that fails
// chosen operations or forgets unsynced data (see package logtest).
type FS interface {
	// OpenFile opens a file with os.OpenFile's flag and permission semantics.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove deletes a file.
	Remove(name string) error
	// Rename atomically replaces newpath with oldpath.
	Rename(oldpath, newpath string) error
	// MkdirAll creates a directory and any missing parents.
	MkdirAll(path string, perm os.FileMode) error
	// ReadDir returns the names of the entries of dir, sorted.
	ReadDir(dir string) ([]string, error)
	// Stat describes a file.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the creations, removals and renames of entries in dir
	// durable.
	SyncDir(dir string) error
}

// File is an open file. The log writes segments only by appending (files
// are opened with os.O_APPEND) and reads them only by position, so a File
// can be read by several goroutines while one appends.
type File interface {
	io.ReaderAt
	io.Writer
	// Sync makes the written data durable (fsync).
	Sync() error
	// Truncate changes the size of the file.
	Truncate(size int64) error
	Close() error
	Stat() (os.FileInfo, error)
}

// OSFS is the real operating-system file system.
type OSFS struct{}

// OpenFile implements FS.
func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

// Stat implements FS.
func (OSFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements FS by fsyncing the directory itself, which is what
// makes new, removed and renamed entries survive a power loss on Linux.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return serr
	}
	return cerr
}
