package log

// Log compaction (cleanup.policy=compact): keep the latest record of every
// key, and drop tombstones once they are older than delete.retention.ms.
//
// A pass works on the cleanable prefix of the log: sealed segments that
// are wholly durable (the active segment is never touched). It reads them
// once to learn the latest offset of each key, then rewrites each segment
// that loses records into a new file beside it. Offsets never change: a
// rewritten batch keeps its base offset and last offset delta and its
// records keep their offset deltas, so every kept record stays at its
// offset and every batch still begins where the one before ended, which
// recovery and reads rely on. A batch whose records all go is folded into
// the batch before it (its last offset delta widened) when that one is not
// idempotent, and otherwise kept as an empty batch that holds its offsets
// and, for an idempotent producer, its sequence numbers.
//
// Transactional batches follow their transaction's outcome, which the
// caller supplies (TxnOutcomes): a committed transaction's records are
// compacted like any others; an aborted transaction's records all go and
// supersede nothing, so an aborted write never removes the committed value
// before it; a transaction not known to have ended (at or above the last
// stable offset) is kept whole and supersedes nothing. Control batches
// (the markers) are kept as they are. A transactional batch whose records
// all go stays as an empty batch, as an idempotent one does.
//
// The swap is crash-safe. The new file is written as <base>.log.cleaned.tmp
// and fsynced; the recovery point is lowered below the segment so that a
// crash from here on makes Open scan it rather than trust its old index
// files; the file is renamed over the .log (atomic) and the directory
// fsynced; new index files are written and fsynced; the recovery point is
// restored. A crash at any step leaves either the old or the new segment,
// both valid, and Open removes leftover .tmp files.

import (
	"fmt"
	"slices"
	"time"
)

// CompactStats describes one compaction pass.
type CompactStats struct {
	Segments          int   // segments rewritten
	BytesBefore       int64 // their size before
	BytesAfter        int64 // and after
	RecordsRemoved    int   // superseded, tombstone and aborted records removed
	TombstonesRemoved int   // of which tombstones
}

// maxCompactKeys bounds the keys one pass remembers. A log with more is
// cleaned up to the segment where the limit was reached; the next pass
// continues from the cleaned data.
const maxCompactKeys = 1 << 22

// cleanedSuffix marks a segment being rewritten. It ends in tmpSuffix, so
// Open removes what a crash leaves behind.
const cleanedSuffix = ".cleaned" + tmpSuffix

// Compact runs one compaction pass at time now, removing tombstones whose
// timestamp is more than deleteRetentionMs before it, with txns telling
// what became of transactional batches. It holds no lock
// while it reads and writes the new files, and takes syncMu only for the
// swap, so appends, reads and syncs go on meanwhile. It must not run
// concurrently with itself on the same log (the broker's cleaner is one
// goroutine).
func (l *Log) Compact(now time.Time, deleteRetentionMs int64, txns TxnOutcomes) (CompactStats, error) {
	var stats CompactStats
	views, err := l.cleanable()
	if err != nil || len(views) == 0 {
		return stats, err
	}
	defer releaseViews(views)
	keys, n, err := latestOffsets(views, txns)
	if err != nil {
		return stats, err
	}
	horizonMs := now.UnixMilli() - deleteRetentionMs
	var cleaned []cleanedSegment
	defer func() {
		for _, c := range cleaned {
			if !c.swapped {
				l.fs.Remove(c.tmp)
			}
		}
	}()
	for _, v := range views[:n] {
		c, err := l.rewriteSegment(v, keys, horizonMs, txns)
		if err != nil {
			return stats, err
		}
		if c != nil {
			cleaned = append(cleaned, *c)
		}
	}
	if len(cleaned) == 0 {
		return stats, nil
	}
	if err := l.swap(cleaned); err != nil {
		return stats, err
	}
	for _, c := range cleaned {
		if c.swapped {
			stats.Segments++
			stats.BytesBefore += c.oldSize
			stats.BytesAfter += c.size
			stats.RecordsRemoved += c.removed
			stats.TombstonesRemoved += c.tombstones
		}
	}
	return stats, nil
}

// cleanable captures the sealed, durable segments at the head of the log.
func (l *Log) cleanable() ([]view, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usableLocked(); err != nil {
		return nil, err
	}
	var vs []view
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.next > l.flushed || slices.Contains(l.unsynced, s) || s.indexFilesStale {
			break
		}
		s.acquire()
		vs = append(vs, view{seg: s, size: s.size})
	}
	return vs, nil
}

// cleanedSegment is a rewritten segment waiting to be swapped in.
type cleanedSegment struct {
	old        *segment
	oldSize    int64
	tmp        string
	size       int64
	removed    int
	tombstones int
	swapped    bool
}

// swap puts the rewritten segments in place of the old ones. syncMu keeps
// Sync, retention, DeleteRecords and Truncate out meanwhile; a segment one
// of them removed or cut since the rewrite began is skipped.
func (l *Log) swap(cleaned []cleanedSegment) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.RLock()
	err := l.usableLocked()
	var live []*cleanedSegment
	for i := range cleaned {
		c := &cleaned[i]
		if slices.Contains(l.segs[:len(l.segs)-1], c.old) && c.old.size == c.oldSize {
			live = append(live, c)
		}
	}
	start := l.start
	l.mu.RUnlock()
	if err != nil || len(live) == 0 {
		return err
	}

	restore := l.recoveryPoint
	if lowest := live[0].old.base; lowest < restore {
		if err := writeCheckpoint(l.fs, l.dir, checkpoint{startOffset: start, recoveryPoint: lowest}); err != nil {
			return fmt.Errorf("log: compact: %w", err)
		}
		l.recoveryPoint = lowest
	}
	for _, c := range live {
		if err := l.fs.Rename(c.tmp, c.old.path(logSuffix)); err != nil {
			return l.failCompaction(fmt.Errorf("rename: %w", err))
		}
		c.swapped = true
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.failCompaction(err)
	}
	fresh := make([]*segment, len(live))
	for i, c := range live {
		s, err := l.openCleaned(c)
		if err != nil {
			for _, s := range fresh[:i] {
				s.release()
			}
			return l.failCompaction(err)
		}
		fresh[i] = s
	}

	l.mu.Lock()
	for i, c := range live {
		idx := slices.Index(l.segs, c.old)
		l.segs[idx] = fresh[i]
		l.size += fresh[i].size - c.oldSize
	}
	l.recomputeMaxTsLocked()
	rp := l.recoveryPointLocked(restore)
	l.mu.Unlock()
	for _, c := range live {
		c.old.release() // readers still holding it keep the old file open
	}
	if rp > l.recoveryPoint {
		l.persistLocked(checkpoint{startOffset: start, recoveryPoint: rp})
	}
	return nil
}

// openCleaned opens a swapped-in segment, rebuilds its indexes from the
// data (checking every batch) and writes them durably.
func (l *Log) openCleaned(c *cleanedSegment) (*segment, error) {
	f, err := openSegmentFile(l.fs, l.dir, c.old.base, false)
	if err != nil {
		return nil, err
	}
	s := newSegment(l.dir, c.old.base, f)
	invalid, err := s.rebuild(c.size, l.Config().IndexIntervalBytes, c.old.modifiedMs)
	switch {
	case err != nil:
	case invalid != nil:
		err = fmt.Errorf("rewritten segment %d is invalid: %v", s.base, invalid)
	case s.next != c.old.next || s.size != c.size:
		err = fmt.Errorf("rewritten segment %d ends at offset %d (%d bytes), want %d (%d bytes)", s.base, s.next, s.size, c.old.next, c.size)
	}
	if err != nil {
		s.release()
		return nil, err
	}
	files, err := s.writeIndexFiles(l.fs)
	for _, f := range files {
		if err == nil {
			err = f.Sync()
		}
	}
	closeAll(files)
	if err != nil {
		s.indexFilesStale = true // rebuilt at the next Open; the recovery point stays below it
		l.logger.Warn("log: compact: cannot write index files", "dir", l.dir, "segment", s.base, "err", err)
	}
	return s, nil
}

// failCompaction handles an error after the first rename: the disk may hold
// new segments the memory does not describe, so the log refuses further
// work until a reopen reads the disk again (the data is valid either way).
func (l *Log) failCompaction(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: compact: %w", ErrFailed, err)
	}
	return l.failed
}
