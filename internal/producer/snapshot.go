package producer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
	Offset  int64        `json:"offset"`
	Entries []Entry      `json:"entries"`
	Aborted []AbortedTxn `json:"aborted,omitempty"`
}

// Snapshot is the producer state of a partition as of Offset.
type Snapshot struct {
	Offset  int64
	Entries []Entry
	Aborted []AbortedTxn
}

func snapshotName(offset int64) string { return fmt.Sprintf("%020d%s", offset, snapshotSuffix) }

// WriteSnapshot durably writes snap in dir and removes all but the newest
// snapshots.
func WriteSnapshot(dir string, snap Snapshot) error {
	offset := snap.Offset
	body, err := json.Marshal(snapshotBody{Offset: offset, Entries: snap.Entries, Aborted: snap.Aborted})
	if err != nil {
		return err
	}
	data := binary.BigEndian.AppendUint32(nil, crc32.Checksum(body, castagnoli))
	data = append(data, body...)
	final := filepath.Join(dir, snapshotName(offset))
	tmp := final + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	offsets, err := snapshotOffsets(dir)
	if err != nil {
		return err
	}
	for i := 0; i < len(offsets)-keepSnapshots; i++ {
		os.Remove(filepath.Join(dir, snapshotName(offsets[i])))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// snapshotOffsets lists the offsets of the snapshots in dir, ascending.
func snapshotOffsets(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var offsets []int64
	for _, e := range entries {
		name := e.Name()
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

// LoadSnapshot reads the newest intact snapshot in dir whose offset is at
// most maxOffset (the recovered log end: a snapshot beyond it describes
// batches the log no longer holds). It returns a snapshot at offset -1
// when there is none; damaged snapshots are skipped.
func LoadSnapshot(dir string, maxOffset int64) (Snapshot, error) {
	offsets, err := snapshotOffsets(dir)
	if err != nil {
		return Snapshot{Offset: -1}, err
	}
	for i := len(offsets) - 1; i >= 0; i-- {
		if offsets[i] > maxOffset {
			continue
		}
		body, err := readSnapshot(filepath.Join(dir, snapshotName(offsets[i])))
		if err == nil {
			return Snapshot{Offset: offsets[i], Entries: body.Entries, Aborted: body.Aborted}, nil
		}
		if !errors.Is(err, errDamaged) {
			return Snapshot{Offset: -1}, err
		}
	}
	return Snapshot{Offset: -1}, nil
}

var errDamaged = errors.New("damaged producer snapshot")

func readSnapshot(path string) (snapshotBody, error) {
	var body snapshotBody
	data, err := os.ReadFile(path)
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
