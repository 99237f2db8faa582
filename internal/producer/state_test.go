package producer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
)

var osfs = wlog.OSFS{}

func hdr(pid int64, epoch int16, seq int32, n int32) batch.Header {
	return batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, LastOffsetDelta: n - 1, NumRecords: n}
}

// The sequence rules of KIP-98/KIP-360, step by step: each row appends
// (if accepted) to the state the rows before it built.
func TestCheckFollowsTheSequenceRules(t *testing.T) {
	s := NewState()
	offset := int64(0)
	steps := []struct {
		name    string
		h       batch.Header
		wantDup int64 // base offset of the duplicate, -1 for none
		wantErr error
	}{
		{"unknown producer starts anywhere", hdr(1, 0, 7, 3), -1, nil},
		{"next in sequence", hdr(1, 0, 10, 2), -1, nil},
		{"retry of the first batch", hdr(1, 0, 7, 3), 0, nil},
		{"retry of the last batch", hdr(1, 0, 10, 2), 3, nil},
		{"gap", hdr(1, 0, 13, 1), -1, ErrOutOfOrder},
		{"overlap that is no retry", hdr(1, 0, 11, 2), -1, ErrOutOfOrder},
		{"zombie epoch", hdr(1, -1, 12, 1), -1, ErrFenced},
		{"new epoch must start at 0", hdr(1, 1, 12, 1), -1, ErrOutOfOrder},
		{"new epoch at 0", hdr(1, 1, 0, 1), -1, nil},
		{"old epoch after bump is fenced", hdr(1, 0, 12, 1), -1, ErrFenced},
		{"other producer is independent", hdr(2, 5, 100, 1), -1, nil},
	}
	for _, st := range steps {
		dup, err := s.Check(st.h)
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.wantErr)
		}
		if st.wantDup >= 0 {
			if dup == nil || dup.BaseOffset != st.wantDup {
				t.Fatalf("%s: duplicate %+v, want base offset %d", st.name, dup, st.wantDup)
			}
			continue
		}
		if dup != nil {
			t.Fatalf("%s: unexpected duplicate %+v", st.name, dup)
		}
		if err == nil {
			s.Update(st.h, offset, 1000)
			offset += int64(st.h.NumRecords)
		}
	}
}

// Only the last five batches are remembered: a retry of an older one is
// out of order, not silently re-appended.
func TestOnlyTheLastFiveBatchesAreRemembered(t *testing.T) {
	s := NewState()
	for i := int32(0); i < 6; i++ {
		s.Update(hdr(1, 0, i, 1), int64(i), 0)
	}
	if dup, err := s.Check(hdr(1, 0, 1, 1)); err != nil || dup == nil || dup.BaseOffset != 1 {
		t.Fatalf("retry of batch 1: %+v %v", dup, err)
	}
	if _, err := s.Check(hdr(1, 0, 0, 1)); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("retry of evicted batch 0: %v", err)
	}
}

func TestSequencesWrapAtInt32Max(t *testing.T) {
	s := NewState()
	s.Update(hdr(1, 0, 1<<31-3, 3), 0, 0) // last sequence is int32 max
	if dup, err := s.Check(hdr(1, 0, 0, 1)); err != nil || dup != nil {
		t.Fatalf("sequence 0 after int32 max: %+v %v", dup, err)
	}
	// A batch that itself wraps.
	s.Update(hdr(2, 0, 1<<31-2, 4), 10, 0)
	if got := s.entries[2].LastSeq(); got != 1 {
		t.Fatalf("last sequence of a wrapping batch: %d, want 1", got)
	}
	if _, err := s.Check(hdr(2, 0, 2, 1)); err != nil {
		t.Fatalf("after a wrapping batch: %v", err)
	}
}

// An expired producer is forgotten; its next batch is accepted as a new
// producer's would be.
func TestExpiredProducersAreForgotten(t *testing.T) {
	s := NewState()
	s.Update(hdr(1, 0, 0, 1), 0, 1000)
	s.Update(hdr(2, 0, 0, 1), 1, 5000)
	if n := s.Expire(7000, 3000); n != 1 || s.Len() != 1 {
		t.Fatalf("expired %d, left %d", n, s.Len())
	}
	if _, err := s.Check(hdr(1, 0, 50, 1)); err != nil {
		t.Fatalf("expired producer's next batch: %v", err)
	}
}

// Snapshots round-trip, the newest one not beyond the log end is chosen,
// and a damaged one is skipped for an older intact one.
func TestSnapshotsRoundTripAndSkipDamage(t *testing.T) {
	dir := t.TempDir()
	s := NewState()
	s.Update(hdr(1, 0, 0, 2), 0, 10)
	if err := WriteSnapshot(osfs, dir, Snapshot{Offset: 2, Entries: s.Entries()}); err != nil {
		t.Fatal(err)
	}
	s.Update(hdr(1, 0, 2, 2), 2, 20)
	if err := WriteSnapshot(osfs, dir, Snapshot{Offset: 4, Entries: s.Entries(), Aborted: []AbortedTxn{{ProducerID: 9, FirstOffset: 1, LastOffset: 3}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := LoadSnapshot(osfs, dir, 0, 100)
	if err != nil || snap.Offset != 4 || len(snap.Entries) != 1 || snap.Entries[0].LastSeq() != 3 || len(snap.Aborted) != 1 {
		t.Fatalf("newest snapshot: %+v %v", snap, err)
	}
	if snap, _ := LoadSnapshot(osfs, dir, 0, 3); snap.Offset != 2 {
		t.Fatalf("snapshot for a log ending at 3: %d, want 2", snap.Offset)
	}
	path := filepath.Join(dir, snapshotName(4))
	data, _ := os.ReadFile(path)
	data[len(data)-2] ^= 0xff
	os.WriteFile(path, data, 0o644)
	if snap, err := LoadSnapshot(osfs, dir, 0, 100); err != nil || snap.Offset != 2 {
		t.Fatalf("with the newest damaged: %d %v", snap.Offset, err)
	}
	// Only keepSnapshots files stay.
	if err := WriteSnapshot(osfs, dir, Snapshot{Offset: 6, Entries: s.Entries()}); err != nil {
		t.Fatal(err)
	}
	if offs, _ := snapshotOffsets(osfs, dir); len(offs) != keepSnapshots {
		t.Fatalf("snapshots kept: %v", offs)
	}
}

func txnHdr(pid int64, epoch int16, seq, n int32) batch.Header {
	h := hdr(pid, epoch, seq, n)
	h.Attributes = batch.AttrTransactional
	return h
}

// An open transaction holds the first unstable offset at its first batch
// until its marker; an aborted one is listed for fetches that overlap it;
// a committed one is not.
func TestTransactionsOpenAndEndWithMarkers(t *testing.T) {
	s := NewState()
	s.Update(hdr(1, 0, 0, 2), 0, 0) // plain idempotent batch
	if _, ok := s.FirstUnstableOffset(); ok {
		t.Fatal("idempotent batch opened a transaction")
	}
	s.Update(txnHdr(2, 0, 0, 3), 2, 0)
	s.Update(txnHdr(3, 0, 0, 1), 5, 0)
	s.Update(txnHdr(2, 0, 3, 1), 6, 0)
	if off, ok := s.FirstUnstableOffset(); !ok || off != 2 {
		t.Fatalf("first unstable offset %d %v, want 2", off, ok)
	}
	s.ApplyMarker(2, 0, false, 7, 0) // abort producer 2's transaction
	if off, _ := s.FirstUnstableOffset(); off != 5 {
		t.Fatalf("after the abort: first unstable offset %d, want 5", off)
	}
	s.ApplyMarker(3, 0, true, 8, 0)
	if _, ok := s.FirstUnstableOffset(); ok {
		t.Fatal("transactions still open after their markers")
	}
	if got := s.AbortedIn(0, 100); len(got) != 1 || got[0] != (AbortedTxn{ProducerID: 2, FirstOffset: 2, LastOffset: 7}) {
		t.Fatalf("aborted: %+v", got)
	}
	if got := s.AbortedIn(8, 100); len(got) != 0 {
		t.Fatalf("aborted after offset 8: %+v", got)
	}
	if err := s.CheckMarker(2, -1); !errors.Is(err, ErrFenced) {
		t.Fatalf("marker of an older epoch: %v", err)
	}
	// A marker at a newer epoch fences the producer's older epoch.
	s.Update(txnHdr(3, 0, 1, 1), 9, 0)
	s.ApplyMarker(3, 1, false, 10, 0)
	if _, err := s.Check(txnHdr(3, 0, 2, 1)); !errors.Is(err, ErrFenced) {
		t.Fatalf("old epoch after a fencing abort: %v", err)
	}
}

// A coordinator's transactional write without a sequence (TxnOffsetCommit
// records) is checked by epoch alone, also when its epoch is new.
func TestUnsequencedTransactionalWritesAreCheckedByEpochOnly(t *testing.T) {
	s := NewState()
	s.Update(txnHdr(1, 0, -1, 2), 0, 0)
	s.ApplyMarker(1, 1, false, 2, 0) // aborted at a bumped epoch
	if _, err := s.Check(txnHdr(1, 2, -1, 1)); err != nil {
		t.Fatalf("next epoch's unsequenced write: %v", err)
	}
	if _, err := s.Check(txnHdr(1, 0, -1, 1)); !errors.Is(err, ErrFenced) {
		t.Fatalf("older epoch's unsequenced write: %v", err)
	}
}
