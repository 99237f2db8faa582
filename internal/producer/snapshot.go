package producer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	wlog "github.com/weir-broker/weir/internal/log"
)

// A snapshot file holds the producer state of a partition as of an offset:
// every batch below the offset is reflected, none at or above it. It is
// named <offset>.snapshot (20 digits) and holds a CRC-32C of the JSON body
// followed by the body. Snapshots are written whole to a temporary file,
// fsynced and renamed, so a crash leaves either the old set or the new.

const snapshotSuffix = ".snapshot"

// keepSnapshots is how many snapshot files are kept; older ones go.
const keepSnapshots = 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapshotBody struct {
	Offset       int64             `json:"offset"`
	Entries      []Entry           `json:"entries"`
	Aborted      []AbortedTxn      `json:"aborted,omitempty"`
	Unreplicated []UnreplicatedTxn `json:"unreplicated,omitempty"`
	Markers      []Marker          `json:"markers,omitempty"`
}

// Snapshot is the producer state of a partition as of Offset.
type Snapshot struct {
	Offset  int64
	Entries []Entry
	Aborted []AbortedTxn
	// Unreplicated lists the transactions whose marker was in the log
	// but not yet below the high watermark when the snapshot was taken.
	Unreplicated []UnreplicatedTxn
	// Markers are the numbered transaction markers applied (State.Markers).
	Markers []Marker
}

// UnreplicatedTxn is a transaction whose marker is in the log but not yet
// known to be on every in-sync replica: it holds the last stable offset
// at its first offset until the high watermark passes MarkerEnd, since
// losing the marker would make it open again.
type UnreplicatedTxn struct {
	FirstOffset int64 `json:"firstOffset"`
	MarkerEnd   int64 `json:"markerEnd"`
}

func snapshotName(offset int64) string { return fmt.Sprintf("%020d%s", offset, snapshotSuffix) }

// WriteSnapshot durably writes snap in dir through fs and removes all
// but the newest snapshots.
func WriteSnapshot(fs wlog.FS, dir string, snap Snapshot) error {
	body, err := json.Marshal(snapshotBody(snap))
	if err != nil {
		return err
	}
	data := binary.BigEndian.AppendUint32(nil, crc32.Checksum(body, castagnoli))
	data = append(data, body...)
	if err := wlog.WriteFileDurably(fs, dir, snapshotName(snap.Offset), data); err != nil {
		return err
	}
	offsets, err := snapshotOffsets(fs, dir)
	if err != nil {
		return err
	}
	for i := 0; i < len(offsets)-keepSnapshots; i++ {
		fs.Remove(filepath.Join(dir, snapshotName(offsets[i])))
	}
	return nil
}

// snapshotOffsets lists the offsets of the snapshots in dir, ascending.
func snapshotOffsets(fs wlog.FS, dir string) ([]int64, error) {
	names, err := fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var offsets []int64
	for _, name := range names {
		if !strings.HasSuffix(name, snapshotSuffix) {
			continue
		}
		if off, err := strconv.ParseInt(strings.TrimSuffix(name, snapshotSuffix), 10, 64); err == nil {
			offsets = append(offsets, off)
		}
	}
	sort.Slice(offsets, func(i, j int) bool { return offsets[i] < offsets[j] })
	return offsets, nil
}

// DeleteSnapshotsAbove durably removes the snapshots whose offset is above
// offset: after a truncation of the log to offset they describe batches
// the log no longer holds, and once the log grows past them again they
// would be loaded as if they described the new ones.
func DeleteSnapshotsAbove(fs wlog.FS, dir string, offset int64) error {
	offsets, err := snapshotOffsets(fs, dir)
	if err != nil {
		return err
	}
	removed := false
	for _, off := range offsets {
		if off > offset {
			if err := fs.Remove(filepath.Join(dir, snapshotName(off))); err != nil {
				return err
			}
			removed = true
		}
	}
	if !removed {
		return nil
	}
	return fs.SyncDir(dir)
}

// LoadSnapshot reads the newest intact snapshot in dir whose offset lies
// in [minOffset, maxOffset]: maxOffset is the recovered log end (a
// snapshot beyond it describes batches the log no longer holds), and
// minOffset the log start (a snapshot below it misses what happened
// between its offset and the log start, which replay can no longer read:
// a marker there would never be applied). It returns a snapshot at offset
// -1 when there is none; damaged snapshots are skipped.
func LoadSnapshot(fs wlog.FS, dir string, minOffset, maxOffset int64) (Snapshot, error) {
	offsets, err := snapshotOffsets(fs, dir)
	if err != nil {
		return Snapshot{Offset: -1}, err
	}
	for i := len(offsets) - 1; i >= 0 && offsets[i] >= minOffset; i-- {
		if offsets[i] > maxOffset {
			continue
		}
		body, err := readSnapshot(fs, filepath.Join(dir, snapshotName(offsets[i])))
		if err == nil {
			return Snapshot{Offset: offsets[i], Entries: body.Entries, Aborted: body.Aborted, Unreplicated: body.Unreplicated, Markers: body.Markers}, nil
		}
		if !errors.Is(err, errDamaged) {
			return Snapshot{Offset: -1}, err
		}
	}
	return Snapshot{Offset: -1}, nil
}

var errDamaged = errors.New("damaged producer snapshot")

// maxSnapshotBytes bounds what is read of one snapshot file.
const maxSnapshotBytes = 1 << 30

func readSnapshot(fs wlog.FS, path string) (snapshotBody, error) {
	var body snapshotBody
	data, err := wlog.ReadWholeFile(fs, path, maxSnapshotBytes)
	if err != nil {
		return body, err
	}
	if len(data) < 4 || binary.BigEndian.Uint32(data) != crc32.Checksum(data[4:], castagnoli) {
		return body, errDamaged
	}
	if err := json.Unmarshal(data[4:], &body); err != nil {
		return body, fmt.Errorf("%w: %v", errDamaged, err)
	}
	return body, nil
}
