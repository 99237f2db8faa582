package log

import (
	"fmt"
	"slices"
)

// Truncate removes every batch at and after offset, which must be the base
// offset of a batch (or the log end) and not below the log start offset.
// It is for replicas that diverged from their leader (KIP-101): the
// truncation is fsynced before Truncate returns, so the removed batches do
// not come back after a crash. It holds the log's lock throughout, so it
// excludes appends and reads while it works; it is rare.
func (l *Log) Truncate(offset int64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if offset < l.start || offset > l.end {
		return fmt.Errorf("%w: cannot truncate to %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, l.start, l.end)
	}
	if offset == l.end {
		return nil
	}
	i := l.segmentIndexLocked(offset)
	s := l.segs[i]
	pos, err := batchBoundary(s, offset)
	if err != nil {
		return err
	}
	// Lower the recovery point and withdraw the tail checkpoint first, so
	// that if we crash part way the next Open scans this segment rather
	// than trusting its old index files or a prefix that no longer exists.
	if err := l.forgetTailLocked(); err != nil {
		return err
	}
	if s.base < l.recoveryPoint {
		c := checkpoint{startOffset: l.start, recoveryPoint: s.base}
		if err := writeCheckpoint(l.fs, l.dir, c); err != nil {
			return err
		}
		l.recoveryPoint = s.base
	}

	dead := slices.Clone(l.segs[i+1:])
	l.segs = l.segs[:i+1]
	l.forgetLocked(dead)
	for _, d := range dead {
		if err := d.removeFiles(l.fs); err != nil {
			return l.failLocked(fmt.Errorf("truncate: %w", err))
		}
		d.release()
	}
	l.unsynced = slices.DeleteFunc(l.unsynced, func(u *segment) bool { return u == s })
	s.closePendingIndex()
	if err := s.log.Truncate(pos); err != nil {
		return l.failLocked(fmt.Errorf("truncate: %w", err))
	}
	if err := s.log.Sync(); err != nil {
		return l.failLocked(fmt.Errorf("truncate: fsync: %w", err))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.failLocked(fmt.Errorf("truncate: fsync dir: %w", err))
	}

	rollMs := s.rollMs
	invalid, err := s.rebuild(pos, l.cfg.IndexIntervalBytes, s.modifiedMs)
	if err == nil && invalid != nil {
		err = invalid
	}
	if err != nil {
		return l.failLocked(fmt.Errorf("truncate: rescan segment %d: %w", s.base, err))
	}
	if s.size > 0 {
		s.rollMs = rollMs
	}
	l.size = 0
	for _, seg := range l.segs {
		l.size += seg.size
	}
	l.end = offset
	l.flushed = min(l.flushed, offset)
	l.recomputeMaxTsLocked()
	return nil
}

// failLocked puts the log in the failed state: the files no longer match
// what the log believes.
func (l *Log) failLocked(err error) error {
	l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	return l.failed
}

// batchBoundary returns the position of the batch of s whose base offset is
// offset, or ErrNotBatchBoundary.
func batchBoundary(s *segment, offset int64) (int64, error) {
	if offset == s.base {
		return 0, nil
	}
	for pos := s.idx.lookup(s.rel(offset)); pos < s.size; {
		h, err := readHeaderAt(s, pos, s.size)
		if err != nil {
			return 0, err
		}
		switch {
		case h.BaseOffset == offset:
			return pos, nil
		case h.BaseOffset > offset:
			return 0, fmt.Errorf("%w: %d", ErrNotBatchBoundary, offset)
		}
		pos += int64(h.Size())
	}
	return 0, fmt.Errorf("%w: %d", ErrNotBatchBoundary, offset)
}

// TruncateFullyAndStartAt removes every batch and starts the log again,
// empty, at offset, which becomes its start and end offset: a follower
// whose log ends below its leader's log start takes up from there
// (Kafka's truncateFullyAndStartAt). It is durable when it returns, and a
// crash part way leaves either a prefix of the old log or the empty log
// at offset: the recovery point is lowered first, the segments are
// removed newest first, each removal made durable before the next, and
// the new start is written last. Like Truncate it excludes appends and
// reads while it works; it is rare.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("%w: cannot start the log at %d", ErrOffsetOutOfRange, offset)
	}
	// With the recovery point at 0 and no tail checkpoint every segment
	// left by a crash is checked, and a prefix of them is a valid log.
	if err := l.forgetTailLocked(); err != nil {
		return err
	}
	if err := writeCheckpoint(l.fs, l.dir, checkpoint{startOffset: l.start, recoveryPoint: 0}); err != nil {
		return err
	}
	l.recoveryPoint = 0
	// On a failure the log keeps the segments not yet removed, so that
	// reads stay sound until it is reopened; with none left it closes.
	fail := func(err error) error {
		if len(l.segs) == 0 {
			l.closed = true
		} else {
			l.end = l.segs[len(l.segs)-1].next
			l.flushed = min(l.flushed, l.end)
		}
		return l.failLocked(fmt.Errorf("truncate fully: %w", err))
	}
	for len(l.segs) > 0 {
		last := l.segs[len(l.segs)-1]
		l.forgetLocked([]*segment{last})
		l.segs = l.segs[:len(l.segs)-1]
		if err := last.removeFiles(l.fs); err != nil {
			return fail(err)
		}
		last.release()
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fail(err)
		}
	}
	f, err := openSegmentFile(l.fs, l.dir, offset, true)
	if err != nil {
		return fail(err)
	}
	l.segs = []*segment{newSegment(l.dir, offset, f)}
	l.start, l.end, l.flushed = offset, offset, offset
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fail(err)
	}
	if err := writeCheckpoint(l.fs, l.dir, checkpoint{startOffset: offset, recoveryPoint: offset}); err != nil {
		return fail(err)
	}
	l.recoveryPoint = offset
	l.unsynced, l.dirDirty = nil, false
	l.size = 0
	l.recomputeMaxTsLocked()
	return nil
}
