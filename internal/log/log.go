package log

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/weir-broker/weir/internal/batch"
)

// Errors returned by the log.
var (
	// ErrOffsetOutOfRange: the offset lies below the log start offset or
	// beyond the log end offset (Kafka's OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("log: offset out of range")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("log: closed")
	// ErrFailed: an fsync or an undo of a failed write failed earlier, so
	// what is on disk is unknown. The log refuses appends and syncs until it
	// is reopened, which recovers from what the disk actually holds.
	ErrFailed = errors.New("log: failed")
	// ErrBatchTooLarge: the batch is larger than a segment may be (Kafka's
	// RECORD_LIST_TOO_LARGE).
	ErrBatchTooLarge = errors.New("log: batch larger than a segment")
	// ErrNotBatchBoundary: Truncate was asked to cut inside a batch.
	ErrNotBatchBoundary = errors.New("log: offset is not a batch boundary")
)

// Log is the segmented, append-only log of one partition.
//
// Locking: syncMu serialises the operations that fsync or change which
// segments exist other than by rolling (Sync, Truncate, DeleteRecordsBefore,
// EnforceRetention, Close) and is held across their file I/O. mu guards the
// in-memory state; it is never held across an fsync except in Truncate and
// Close, which must exclude appends while they work. Lock order: syncMu,
// then mu. Append takes only mu, so it proceeds while Sync waits on the
// disk; Read takes mu shared just long enough to pick segments and
// positions, then reads without it, holding references that keep the
// segments' files open even if retention deletes them meanwhile.
type Log struct {
	dir    string
	fs     FS
	now    func() time.Time
	logger *slog.Logger

	syncMu        sync.Mutex
	recoveryPoint int64          // as last persisted; guarded by syncMu
	tail          tailCheckpoint // as last written; guarded by syncMu

	mu       sync.RWMutex
	cfg      Config
	segs     []*segment // by base offset; the last is active
	start    int64      // log start offset
	end      int64      // log end offset
	flushed  int64      // everything below is durable
	size     int64      // bytes in all segments
	maxTs    int64      // largest batch timestamp, -1 when none
	maxTsOff int64      // offset of the record holding maxTs, -1 when none
	unsynced []*segment // sealed segments whose data or index files are not yet fsynced
	dirDirty bool       // directory entries created since the last directory fsync
	failed   error      // sticky; wraps ErrFailed
	closed   bool
}

// Append writes one batch at the log end and returns the base offset it
// assigned. b must hold exactly one v2 batch; its CRC is checked again here
// (a mismatch returns an error wrapping batch.ErrCorrupt and writes
// nothing) and its base offset is rewritten in place. The segment rolls
// first if the batch would not fit or the segment is older than SegmentMs.
//
// The data reaches the operating system but is not fsynced; see Sync. A
// write that fails is undone by truncating the segment back, so nothing of
// it is visible and the log stays usable; if the undo fails too the log
// enters the failed state (ErrFailed).
func (l *Log) Append(b []byte) (int64, error) {
	h, err := batch.ParseHeader(b)
	if err != nil {
		if errors.Is(err, batch.ErrTruncated) {
			err = fmt.Errorf("%w: %v", batch.ErrCorrupt, err)
		}
		return -1, fmt.Errorf("log: append: %w", err)
	}
	if h.Size() != len(b) {
		return -1, fmt.Errorf("log: append: %w: batch of %d bytes in %d", batch.ErrCorrupt, h.Size(), len(b))
	}
	if err := batch.CheckCRC(b, h); err != nil {
		return -1, fmt.Errorf("log: append: %w", err)
	}
	if h.LastOffsetDelta < 0 {
		return -1, fmt.Errorf("log: append: %w: last offset delta %d", batch.ErrCorrupt, h.LastOffsetDelta)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return -1, err
	}
	if int64(len(b)) > l.cfg.SegmentBytes {
		return -1, fmt.Errorf("%w: %d bytes, segments hold %d", ErrBatchTooLarge, len(b), l.cfg.SegmentBytes)
	}
	nowMs := l.now().UnixMilli()
	seg := l.segs[len(l.segs)-1]
	if seg.size > 0 && (!seg.fits(len(b), l.end+int64(h.LastOffsetDelta), l.cfg.SegmentBytes) || nowMs-seg.rollMs > l.cfg.SegmentMs) {
		if seg, err = l.rollLocked(); err != nil {
			return -1, err
		}
	}

	base := l.end
	batch.SetBaseOffset(b, base)
	h.BaseOffset = base
	pos := seg.size
	if pos == 0 {
		seg.rollMs = nowMs
	}
	if n, err := seg.log.Write(b); err != nil || n != len(b) {
		if err == nil {
			err = io.ErrShortWrite
		}
		return -1, l.undoWriteLocked(seg, pos, err)
	}
	seg.track(h, pos, l.cfg.IndexIntervalBytes, nowMs)
	l.end = h.NextOffset()
	l.size += int64(len(b))
	if h.MaxTimestamp > l.maxTs {
		l.maxTs, l.maxTsOff = h.MaxTimestamp, maxTimestampOffset(h)
	}
	return base, nil
}

// undoWriteLocked removes whatever part of a failed write reached the file.
func (l *Log) undoWriteLocked(seg *segment, pos int64, cause error) error {
	if err := seg.log.Truncate(pos); err != nil {
		l.failed = fmt.Errorf("%w: write failed (%w) and could not be undone: %w", ErrFailed, cause, err)
		return l.failed
	}
	return fmt.Errorf("log: append: %w", cause)
}

func (l *Log) usableLocked() error {
	if l.closed {
		return ErrClosed
	}
	return l.failed
}

// rollLocked seals the active segment and starts a new one at the log end.
// The sealed segment's index files are written now and fsynced by the next
// Sync, together with its data.
func (l *Log) rollLocked() (*segment, error) {
	old := l.segs[len(l.segs)-1]
	f, err := openSegmentFile(l.fs, l.dir, l.end, true)
	if err != nil {
		return nil, fmt.Errorf("log: roll: %w", err)
	}
	seg := newSegment(l.dir, l.end, f)
	l.sealLocked(old)
	l.segs = append(l.segs, seg)
	l.dirDirty = true
	return seg, nil
}

// sealLocked writes a segment's index files and queues it for fsync. An
// index file that cannot be written is not fatal: the segment keeps
// indexFilesStale, which holds the recovery point below it, so the next
// Open rebuilds its index from the .log.
func (l *Log) sealLocked(s *segment) {
	files, err := s.writeIndexFiles(l.fs)
	if err != nil {
		l.logger.Warn("log: cannot write index files; they will be rebuilt at the next open", "dir", l.dir, "segment", s.base, "err", err)
		s.indexFilesStale = true
	}
	s.pendingIdx = append(s.pendingIdx, files...)
	l.unsynced = append(l.unsynced, s)
}

// Sync fsyncs everything appended so far, including segments rolled since
// the last Sync, and returns the offset below which data is now durable.
// Concurrent callers share the work (group commit): a caller that waited
// for another's fsync returns at once if that covered its data. Appends and
// reads go on while Sync waits on the disk. An fsync error is sticky: the
// log enters the failed state (ErrFailed) and only a reopen recovers it.
func (l *Log) Sync() (int64, error) {
	target := l.EndOffset()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.RLock()
	closed, failed, flushed := l.closed, l.failed, l.flushed
	l.mu.RUnlock()
	switch {
	case closed:
		return flushed, ErrClosed
	case failed != nil:
		return flushed, failed
	case flushed >= target:
		return flushed, nil // another caller's fsync covered everything we need
	}
	return l.syncLocked()
}

// syncLocked is Sync with syncMu held; it takes mu only to capture and
// publish state, never across an fsync.
func (l *Log) syncLocked() (int64, error) {
	l.mu.Lock()
	if l.failed != nil {
		defer l.mu.Unlock()
		return l.flushed, l.failed
	}
	end := l.end
	if l.flushed >= end && len(l.unsynced) == 0 && !l.dirDirty {
		defer l.mu.Unlock()
		return l.flushed, nil
	}
	active := l.segs[len(l.segs)-1]
	files := make([]File, 0, 1+3*len(l.unsynced))
	var idxFiles []File
	for _, s := range l.unsynced {
		files = append(files, s.log)
		idxFiles = append(idxFiles, s.pendingIdx...)
		s.pendingIdx = nil
	}
	files = append(files, idxFiles...)
	if l.flushed < end {
		files = append(files, active.log)
	}
	l.unsynced = nil
	dirDirty := l.dirDirty
	l.dirDirty = false
	rp := l.recoveryPointLocked(active.base)
	tail := tailCheckpoint{base: active.base, pos: active.size, next: active.next}
	start := l.start
	onSync, from := l.cfg.OnSync, l.flushed
	l.mu.Unlock()

	began := time.Now()
	var err error
	for _, f := range files {
		if err = f.Sync(); err != nil {
			break
		}
	}
	if err == nil && dirDirty {
		err = l.fs.SyncDir(l.dir)
	}
	closeAll(idxFiles)
	if err == nil && onSync != nil && end > from {
		onSync(time.Since(began), end-from)
	}

	l.mu.Lock()
	if err != nil {
		l.failed = fmt.Errorf("%w: fsync: %w", ErrFailed, err)
		defer l.mu.Unlock()
		return l.flushed, l.failed
	}
	if end > l.flushed {
		l.flushed = end
	}
	flushed := l.flushed
	l.mu.Unlock()

	if rp > l.recoveryPoint {
		l.persistLocked(checkpoint{startOffset: start, recoveryPoint: rp})
	}
	if tail.pos > 0 && (l.tail.pos == 0 || tail.base != l.tail.base || tail.pos-l.tail.pos >= tailCheckpointBytes) {
		l.writeTailLocked(tail)
	}
	return flushed, nil
}

// writeTailLocked records how much of the active segment is fsynced, with
// no fsync of its own (see tailCheckpoint). A failure only costs a longer
// scan at the next open, so it is logged, not returned. syncMu is held.
func (l *Log) writeTailLocked(c tailCheckpoint) {
	if err := writeTailCheckpointLazily(l.fs, l.dir, c); err != nil {
		l.logger.Warn("log: cannot record the fsynced part of the active segment", "dir", l.dir, "err", err)
		return
	}
	l.tail = c
}

// forgetTailLocked durably withdraws the tail checkpoint before fsynced
// data it may cover is removed. syncMu is held.
func (l *Log) forgetTailLocked() error {
	if l.tail.pos == 0 {
		return nil
	}
	if err := writeTailCheckpointDurably(l.fs, l.dir, tailCheckpoint{}); err != nil {
		return err
	}
	l.tail = tailCheckpoint{}
	return nil
}

// recoveryPointLocked is the highest recovery point the segments allow once
// everything below limit is durable: limit itself, unless a segment below it
// could not write its index files.
func (l *Log) recoveryPointLocked(limit int64) int64 {
	for _, s := range l.segs {
		if s.base >= limit {
			break
		}
		if s.indexFilesStale {
			return s.base
		}
	}
	return limit
}

// persistLocked writes a checkpoint whose recovery point is an optimisation:
// a failure only costs a longer scan at the next open, so it is logged, not
// returned. syncMu is held.
func (l *Log) persistLocked(c checkpoint) {
	if err := writeCheckpoint(l.fs, l.dir, c); err != nil {
		l.logger.Warn("log: cannot persist recovery point", "dir", l.dir, "err", err)
		return
	}
	l.recoveryPoint = c.recoveryPoint
}

// Close fsyncs the log, writes the active segment's index files and a
// clean checkpoint whose recovery point is the log end, so the next Open
// scans nothing, and closes the files. Reads in flight finish first on
// their own references.
func (l *Log) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.mu.Unlock()

	_, err := l.syncLocked()
	if err == nil {
		err = l.writeCleanLocked()
	}

	l.mu.Lock()
	segs := l.segs
	for _, s := range l.unsynced {
		s.closePendingIndex()
	}
	l.unsynced = nil
	l.mu.Unlock()
	for _, s := range segs {
		s.release()
	}
	return err
}

// writeCleanLocked persists the active segment's indexes and a checkpoint
// that trusts every segment. Both mutexes' writers are excluded: syncMu is
// held and the log is closed to appends.
func (l *Log) writeCleanLocked() error {
	l.mu.RLock()
	active := l.segs[len(l.segs)-1]
	end, start := l.end, l.start
	l.mu.RUnlock()
	if active.indexFilesStale {
		files, err := active.writeIndexFiles(l.fs)
		if err == nil {
			for _, f := range files {
				if err = f.Sync(); err != nil {
					break
				}
			}
		}
		closeAll(files)
		if err != nil {
			return fmt.Errorf("log: close: write index files: %w", err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("log: close: %w", err)
	}
	l.mu.RLock()
	rp := l.recoveryPointLocked(end)
	l.mu.RUnlock()
	c := checkpoint{startOffset: start, recoveryPoint: rp, clean: true}
	if err := writeCheckpoint(l.fs, l.dir, c); err != nil {
		return err
	}
	l.recoveryPoint = rp
	return nil
}

// StartOffset returns the log start offset.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.start
}

// EndOffset returns the log end offset: the offset the next Append assigns.
func (l *Log) EndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.end
}

// FlushedOffset returns the offset below which everything is durable.
func (l *Log) FlushedOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.flushed
}

// Size returns the bytes held by all segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// MaxTimestamp returns the largest batch timestamp in the log and the offset
// of the record holding it, or (-1, -1) when no batch carries a timestamp.
// The log does not decode records, so the offset is the batch's first
// record under LogAppendTime and its last under CreateTime.
func (l *Log) MaxTimestamp() (offset, timestamp int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.maxTs < 0 {
		return -1, -1
	}
	return l.maxTsOff, l.maxTs
}

// recomputeMaxTsLocked derives the log's largest timestamp from its
// segments after some were removed or truncated.
func (l *Log) recomputeMaxTsLocked() {
	l.maxTs, l.maxTsOff = -1, -1
	for _, s := range l.segs {
		if s.maxTs > l.maxTs {
			l.maxTs, l.maxTsOff = s.maxTs, s.maxTsOffset
		}
	}
}

// SetConfig changes the segment and retention settings of a running log
// (AlterConfigs). The file system, clock, logger and OnSync stay those given to Open. The
// new settings apply from the next Append or EnforceRetention.
func (l *Log) SetConfig(c Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.FS, c.Now, c.Logger, c.OnSync = l.cfg.FS, l.cfg.Now, l.cfg.Logger, l.cfg.OnSync
	l.cfg = c.normalized()
}

// Config returns the log's current settings.
func (l *Log) Config() Config {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cfg
}

// Dir returns the partition directory.
func (l *Log) Dir() string { return l.dir }
