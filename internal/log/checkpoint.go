package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// checkpointName is the file holding a checkpoint in the partition directory.
const checkpointName = "log.checkpoint"

// tmpSuffix marks a checkpoint being written; Open removes leftovers.
const tmpSuffix = ".tmp"

// checkpoint is the small durable state of a log besides its segments.
//
// recoveryPoint has one meaning: every segment whose base offset is below
// it holds only durable data, and its index files on disk describe that
// data. Open trusts those segments and scans the rest. It is the base of
// the active segment while the log runs and the log end offset after a
// clean Close.
type checkpoint struct {
	startOffset   int64
	recoveryPoint int64
	clean         bool // written by Close; informational
}

// Checkpoint file layout, big endian:
//
//	magic "WLCP" | version 1 (1 byte) | flags (1 byte, bit 0 = clean)
//	| log start offset (8) | recovery point (8) | CRC-32C of the above (4)
const (
	checkpointMagic   = "WLCP"
	checkpointVersion = 1
	checkpointSize    = 4 + 1 + 1 + 8 + 8 + 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func (c checkpoint) encode() []byte {
	b := make([]byte, checkpointSize)
	copy(b, checkpointMagic)
	b[4] = checkpointVersion
	if c.clean {
		b[5] = 1
	}
	binary.BigEndian.PutUint64(b[6:], uint64(c.startOffset))
	binary.BigEndian.PutUint64(b[14:], uint64(c.recoveryPoint))
	binary.BigEndian.PutUint32(b[22:], crc32.Checksum(b[:22], crcTable))
	return b
}

var errBadCheckpoint = errors.New("log: unreadable checkpoint")

func decodeCheckpoint(b []byte) (checkpoint, error) {
	if len(b) != checkpointSize || string(b[:4]) != checkpointMagic || b[4] != checkpointVersion {
		return checkpoint{}, errBadCheckpoint
	}
	if crc32.Checksum(b[:22], crcTable) != binary.BigEndian.Uint32(b[22:]) {
		return checkpoint{}, errBadCheckpoint
	}
	c := checkpoint{
		clean:         b[5]&1 != 0,
		startOffset:   int64(binary.BigEndian.Uint64(b[6:])),
		recoveryPoint: int64(binary.BigEndian.Uint64(b[14:])),
	}
	if c.startOffset < 0 || c.recoveryPoint < 0 {
		return checkpoint{}, errBadCheckpoint
	}
	return c, nil
}

// readCheckpoint returns the checkpoint in dir; ok is false when there is
// none. A checkpoint that exists but does not decode is errBadCheckpoint.
func readCheckpoint(fs FS, dir string) (c checkpoint, ok bool, err error) {
	b, err := readWholeFile(fs, filepath.Join(dir, checkpointName), checkpointSize+1)
	if errors.Is(err, os.ErrNotExist) {
		return checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint{}, false, err
	}
	c, err = decodeCheckpoint(b)
	return c, err == nil, err
}

// writeCheckpoint replaces the checkpoint durably (see WriteFileDurably).
func writeCheckpoint(fs FS, dir string, c checkpoint) error {
	if err := WriteFileDurably(fs, dir, checkpointName, c.encode()); err != nil {
		return fmt.Errorf("log: write checkpoint: %w", err)
	}
	return nil
}

// WriteFileDurably replaces dir/name with data: it writes a temporary
// file, fsyncs it, renames it over the old one and fsyncs the directory,
// so a crash leaves either the old file or the new one. Open removes
// temporary files a crash leaves behind.
func WriteFileDurably(fs FS, dir, name string, data []byte) error {
	final := filepath.Join(dir, name)
	tmp := final + tmpSuffix
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, final)
	}
	if err == nil {
		err = fs.SyncDir(dir)
	}
	return err
}

// ReadWholeFile reads a file of at most limit bytes.
func ReadWholeFile(fs FS, name string, limit int64) ([]byte, error) {
	return readWholeFile(fs, name, limit)
}

// readWholeFile reads a file of at most limit bytes.
func readWholeFile(fs FS, name string, limit int64) ([]byte, error) {
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("log: %s: %d bytes, expected at most %d", name, fi.Size(), limit)
	}
	b := make([]byte, fi.Size())
	if err := readFull(f, b, 0); err != nil {
		return nil, err
	}
	return b, nil
}
