package log

import (
	"fmt"
	"slices"
)

// DeleteRecordsBefore moves the log start offset up to offset (Kafka's
// DeleteRecords), persists it durably and deletes the segments that lie
// wholly below it. Records below the new start are no longer readable even
// where they share a segment or batch with later ones. An offset at or
// below the current start changes nothing; one beyond the log end is
// ErrOffsetOutOfRange.
func (l *Log) DeleteRecordsBefore(offset int64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.RLock()
	err := l.usableLocked()
	start, end := l.start, l.end
	l.mu.RUnlock()
	if err != nil {
		return err
	}
	if offset > end || offset < 0 {
		return fmt.Errorf("%w: cannot delete records before %d, log end is %d", ErrOffsetOutOfRange, offset, end)
	}
	if offset <= start {
		return nil
	}
	return l.advanceStartLocked(offset)
}

// advanceStartLocked persists a new log start offset, then applies it and
// removes the segments wholly below it. The order matters: once the
// checkpoint is durable a crash can only leave extra files, which Open
// deletes; the segments are never gone while the old start is on disk.
// syncMu is held.
func (l *Log) advanceStartLocked(start int64) error {
	if err := writeCheckpoint(l.fs, l.dir, checkpoint{startOffset: start, recoveryPoint: l.recoveryPoint}); err != nil {
		return err
	}
	l.mu.Lock()
	l.start = max(l.start, start)
	dead := l.detachBelowStartLocked()
	l.mu.Unlock()
	l.removeSegments(dead)
	return nil
}

// detachBelowStartLocked takes the segments wholly below the log start
// offset out of the log; the active segment always stays.
func (l *Log) detachBelowStartLocked() []*segment {
	n := 0
	for n+1 < len(l.segs) && l.segs[n+1].base <= l.start {
		n++
	}
	if n == 0 {
		return nil
	}
	dead := slices.Clone(l.segs[:n])
	l.segs = slices.Delete(l.segs, 0, n)
	l.forgetLocked(dead)
	return dead
}

// forgetLocked drops detached segments from the log's accounting.
func (l *Log) forgetLocked(dead []*segment) {
	for _, s := range dead {
		l.size -= s.size
		s.closePendingIndex()
	}
	l.unsynced = slices.DeleteFunc(l.unsynced, func(s *segment) bool { return slices.Contains(dead, s) })
	l.recomputeMaxTsLocked()
}

// removeSegments deletes detached segments' files and drops the log's
// references; readers still holding one keep the files open until done.
// A file that cannot be removed is only logged: the log no longer refers
// to it and the next Open deletes whatever lies below the start offset.
func (l *Log) removeSegments(dead []*segment) {
	if len(dead) == 0 {
		return
	}
	for _, s := range dead {
		if err := s.removeFiles(l.fs); err != nil {
			l.logger.Warn("log: cannot remove segment", "dir", l.dir, "segment", s.base, "err", err)
		}
		s.release()
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		l.logger.Warn("log: cannot sync directory after removing segments", "dir", l.dir, "err", err)
	}
}

// EnforceRetention deletes the oldest segments that retention no longer
// keeps and advances the log start offset past them. By time, a segment
// goes once its largest timestamp is more than RetentionMs old; if even the
// active segment has expired it is rolled first, so an idle partition
// empties as in Kafka. By size, the oldest non-active segments go while the
// log would still hold at least RetentionBytes without them. It returns how
// many segments were deleted. Only segments wholly below limit go: the
// caller passes its high watermark, so retention never deletes records
// that are not yet durable and visible.
func (l *Log) EnforceRetention(limit int64) (deleted int, err error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	n, err := l.expiredLocked()
	for n > 0 && l.segs[n].base > limit {
		n--
	}
	if err != nil || n == 0 {
		l.mu.Unlock()
		return 0, err
	}
	start := max(l.start, l.segs[n].base)
	l.mu.Unlock()
	if err := l.advanceStartLocked(start); err != nil {
		return 0, err
	}
	return n, nil
}

// expiredLocked returns how many segments at the head of the log retention
// deletes, rolling the active segment if all of it expired by time.
func (l *Log) expiredLocked() (int, error) {
	cfg := l.cfg
	n := 0
	if cfg.RetentionMs >= 0 {
		nowMs := l.now().UnixMilli()
		for n < len(l.segs) && l.segs[n].size > 0 && nowMs-l.segs[n].largestTimestampMs() > cfg.RetentionMs {
			n++
		}
		if n == len(l.segs) {
			if _, err := l.rollLocked(); err != nil {
				return 0, err
			}
		}
	}
	if cfg.RetentionBytes >= 0 {
		excess := l.size - cfg.RetentionBytes
		for i := 0; i+1 < len(l.segs) && excess-l.segs[i].size >= 0; i++ {
			excess -= l.segs[i].size
			n = max(n, i+1)
		}
	}
	return n, nil
}
