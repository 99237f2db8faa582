package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// tailCheckpointName is the file recording how much of the active segment
// an fsync covered.
const tailCheckpointName = "tail.checkpoint"

// tailCheckpointBytes is how far the fsynced part of the active segment
// must grow before Sync records it again. The record is an optimisation: a
// stale one only makes the next Open check more of the segment, so it is
// written at most once per this many bytes rather than after every fsync.
const tailCheckpointBytes = 1 << 20

// tailCheckpoint says that the first pos bytes of the segment with base
// offset base were fsynced and hold whole, dense batches ending just before
// offset next. Open trusts that prefix of the active segment as it trusts
// the segments below the recovery point: it walks the batch headers to
// rebuild the index without checking CRCs, and checks with CRCs only what
// lies past pos. pos 0 records nothing.
//
// It is written after the fsync it describes, so it never claims data that
// was not durable; a write lost in a crash leaves an older, smaller claim
// or an unreadable file, and either only costs a longer scan. Only
// operations that remove fsynced data (Truncate, TruncateFullyAndStartAt,
// a recovery that cut the segment below the claim) must replace it
// durably before their effect can reach the disk.
type tailCheckpoint struct {
	base, pos, next int64
}

// Tail checkpoint file layout, big endian:
//
//	magic "WLTC" | version 1 (1 byte) | segment base (8) | position (8)
//	| next offset (8) | CRC-32C of the above (4)
const (
	tailCheckpointMagic   = "WLTC"
	tailCheckpointVersion = 1
	tailCheckpointSize    = 4 + 1 + 8 + 8 + 8 + 4
)

func (c tailCheckpoint) encode() []byte {
	b := make([]byte, tailCheckpointSize)
	copy(b, tailCheckpointMagic)
	b[4] = tailCheckpointVersion
	binary.BigEndian.PutUint64(b[5:], uint64(c.base))
	binary.BigEndian.PutUint64(b[13:], uint64(c.pos))
	binary.BigEndian.PutUint64(b[21:], uint64(c.next))
	binary.BigEndian.PutUint32(b[29:], crc32.Checksum(b[:29], crcTable))
	return b
}

func decodeTailCheckpoint(b []byte) (tailCheckpoint, error) {
	if len(b) != tailCheckpointSize || string(b[:4]) != tailCheckpointMagic || b[4] != tailCheckpointVersion {
		return tailCheckpoint{}, errBadCheckpoint
	}
	if crc32.Checksum(b[:29], crcTable) != binary.BigEndian.Uint32(b[29:]) {
		return tailCheckpoint{}, errBadCheckpoint
	}
	c := tailCheckpoint{
		base: int64(binary.BigEndian.Uint64(b[5:])),
		pos:  int64(binary.BigEndian.Uint64(b[13:])),
		next: int64(binary.BigEndian.Uint64(b[21:])),
	}
	if c.base < 0 || c.pos < 0 || c.next < c.base || c.pos > maxSegmentBytes {
		return tailCheckpoint{}, errBadCheckpoint
	}
	return c, nil
}

// readTailCheckpoint returns the tail checkpoint in dir, or the zero one
// (which claims nothing) when there is none or it does not decode.
func readTailCheckpoint(fs FS, dir string) (tailCheckpoint, error) {
	name := filepath.Join(dir, tailCheckpointName)
	if fi, err := fs.Stat(name); err == nil && fi.Size() > tailCheckpointSize {
		// Not a record of this format (damage, or a newer version's
		// file): like one that does not decode, it only costs a full
		// check of the active segment.
		return tailCheckpoint{}, nil
	}
	b, err := readWholeFile(fs, name, tailCheckpointSize+1)
	if errors.Is(err, os.ErrNotExist) {
		return tailCheckpoint{}, nil
	}
	if err != nil {
		return tailCheckpoint{}, err
	}
	c, err := decodeTailCheckpoint(b)
	if err != nil {
		return tailCheckpoint{}, nil
	}
	return c, nil
}

// writeTailCheckpointLazily replaces the tail checkpoint without any
// fsync: a temporary file renamed over the old one, so a crash leaves the
// old record, the new one, or (after a power loss on some file systems) an
// unreadable file, and every one of those is safe (see tailCheckpoint).
func writeTailCheckpointLazily(fs FS, dir string, c tailCheckpoint) error {
	final := filepath.Join(dir, tailCheckpointName)
	tmp := final + tmpSuffix
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("log: write tail checkpoint: %w", err)
	}
	_, err = f.Write(c.encode())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, final)
	}
	if err != nil {
		return fmt.Errorf("log: write tail checkpoint: %w", err)
	}
	return nil
}

// writeTailCheckpointDurably replaces the tail checkpoint and makes the
// replacement durable, for callers about to remove data an older record
// may claim.
func writeTailCheckpointDurably(fs FS, dir string, c tailCheckpoint) error {
	if err := WriteFileDurably(fs, dir, tailCheckpointName, c.encode()); err != nil {
		return fmt.Errorf("log: write tail checkpoint: %w", err)
	}
	return nil
}
