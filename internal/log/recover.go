package log

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/weir-broker/weir/internal/batch"
)

// Open opens the log in dir, creating the directory if needed, and recovers
// it to a state that is exactly a prefix of what was appended.
//
// Segments below the checkpoint's recovery point were fsynced together with
// their index files, so they are trusted: their indexes are loaded and only
// the batches after the last index entry are checked. From the segment at
// the recovery point on (every segment when there is no checkpoint), each
// batch is checked from the start of its file: it must parse, match its
// CRC, and begin at the offset after the previous one. The one exception
// is the fsynced prefix of the last segment that the tail checkpoint
// names: it is durable like the segments below the recovery point, so
// only its batch headers are walked to rebuild the index, and the checks
// start where it ends (see recoverFromTail); a prefix that does not match
// the file is ignored and the whole segment is checked. At the first that
// does not — the torn tail of a crash — the file is cut there and any later
// segments are deleted, since nothing after a hole can be valid. Invalid
// data in a trusted segment is not a torn tail but lost durable data, and
// Open refuses it with an error wrapping batch.ErrCorrupt rather than
// silently dropping acknowledged records.
//
// The recovered state is fsynced before Open returns, so FlushedOffset
// starts at EndOffset.
func Open(dir string, cfg Config) (*Log, error) {
	cfg = cfg.normalized()
	l := &Log{dir: dir, fs: cfg.FS, now: cfg.Now, logger: cfg.Logger, cfg: cfg, maxTs: -1, maxTsOff: -1}
	if err := l.recover(); err != nil {
		for _, s := range l.segs {
			s.release()
		}
		return nil, fmt.Errorf("log: open %s: %w", dir, err)
	}
	return l, nil
}

// recover is Open's work; on error the caller releases l.segs.
func (l *Log) recover() error {
	if err := prepareDir(l.fs, l.dir); err != nil {
		return err
	}
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var bases []int64
	for _, name := range names {
		if strings.HasSuffix(name, tmpSuffix) {
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil {
				return err
			}
		}
		if base, ok := parseSegmentName(name, logSuffix); ok {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)

	cp, hasCP, err := readCheckpoint(l.fs, l.dir)
	if errors.Is(err, errBadCheckpoint) {
		l.logger.Warn("log: ignoring unreadable checkpoint; recovering every segment", "dir", l.dir)
		err = nil
	}
	if err != nil {
		return err
	}
	start := int64(0)
	if hasCP {
		start = cp.startOffset
	} else if len(bases) > 0 {
		start = bases[0]
	}
	recoveryPoint := cp.recoveryPoint // 0 without a checkpoint: scan all

	// Segments wholly below the start offset were being deleted.
	for len(bases) > 1 && bases[1] <= start {
		if err := removeSegmentFiles(l.fs, l.dir, bases[0]); err != nil {
			return err
		}
		bases = bases[1:]
	}

	tail, err := readTailCheckpoint(l.fs, l.dir)
	if err != nil {
		return err
	}
	l.tail = tail

	var scanned []*segment
	var drop []int64 // segments after a torn tail or a gap
	tailRejected := false
	for i, base := range bases {
		trusted := base < recoveryPoint
		if i > 0 && base != l.end {
			if trusted {
				return fmt.Errorf("%w: segment %d follows log end %d below the recovery point %d", batch.ErrCorrupt, base, l.end, recoveryPoint)
			}
			l.logger.Warn("log: deleting segments after a gap", "dir", l.dir, "segment", base, "expected", l.end)
			drop = bases[i:]
			break
		}
		// The tail checkpoint speaks for the segment that was active
		// when it was written; only the last segment can still be that.
		segTail := tailCheckpoint{}
		if i == len(bases)-1 {
			segTail = tail
		}
		s, torn, rejected, err := l.openSegment(base, trusted, segTail)
		tailRejected = tailRejected || rejected
		if s != nil {
			l.segs = append(l.segs, s)
			l.end = s.next
			l.size += s.size
		}
		if err != nil {
			return err
		}
		if !trusted || s.indexFilesStale {
			scanned = append(scanned, s)
		}
		if torn {
			drop = bases[i+1:]
			break
		}
	}
	if l.end < recoveryPoint {
		return fmt.Errorf("%w: log ends at %d, below the recovery point %d", batch.ErrCorrupt, l.end, recoveryPoint)
	}
	l.logger.Debug("log: opened", "dir", l.dir, "clean_shutdown", hasCP && cp.clean, "segments", len(l.segs), "scanned", len(scanned), "end", l.end)
	var prev *checkpoint
	if hasCP {
		prev = &cp
	}
	return l.finishRecovery(start, drop, scanned, tailRejected, prev, l.now().UnixMilli())
}

// openSegment opens one segment, loading its index files when trusted and
// otherwise rebuilding them by a checked scan that cuts the file at the
// first invalid batch (torn reports that it did).
//
// tail, when it names this segment, lets an untrusted segment skip the
// CRC checks of its fsynced prefix (see recoverFromTail); tailRejected
// reports that it named the segment but did not match it.
func (l *Log) openSegment(base int64, trusted bool, tail tailCheckpoint) (s *segment, torn, tailRejected bool, err error) {
	f, err := openSegmentFile(l.fs, l.dir, base, false)
	if err != nil {
		return nil, false, false, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, false, err
	}
	s = newSegment(l.dir, base, f)
	size, modMs := fi.Size(), fi.ModTime().UnixMilli()
	if trusted {
		if ok, err := s.load(l.fs, size, modMs); err != nil || ok {
			return s, false, false, err
		}
		l.logger.Info("log: rebuilding index files", "dir", l.dir, "segment", base)
	}
	var invalid error
	fromTail := false
	if !trusted && tail.base == base && tail.pos > 0 {
		fromTail, invalid, err = s.recoverFromTail(tail, size, l.cfg.IndexIntervalBytes, modMs)
		if err != nil {
			return s, false, false, err
		}
		if !fromTail {
			tailRejected = true
			l.logger.Warn("log: tail checkpoint does not match the active segment; checking all of it", "dir", l.dir, "segment", base, "size", size, "checkpoint_position", tail.pos, "checkpoint_next", tail.next)
		}
	}
	if !fromTail {
		invalid, err = s.rebuild(size, l.cfg.IndexIntervalBytes, modMs)
	}
	if err != nil {
		return s, false, tailRejected, err
	}
	if invalid == nil {
		return s, false, tailRejected, nil
	}
	if trusted {
		return s, false, false, fmt.Errorf("%w: segment %d below the recovery point: %v", batch.ErrCorrupt, base, invalid)
	}
	l.logger.Warn("log: truncating torn tail", "dir", l.dir, "segment", base, "position", s.size, "dropped_bytes", size-s.size, "reason", invalid)
	if err := f.Truncate(s.size); err != nil {
		return s, false, tailRejected, err
	}
	if err := f.Sync(); err != nil {
		return s, false, tailRejected, err
	}
	return s, true, tailRejected, nil
}

// finishRecovery deletes the segments past a torn tail or gap, repairs the
// start offset, makes the recovered state durable and persists a
// checkpoint whose recovery point is the active segment, and a tail
// checkpoint covering all of it.
//
// prev is the checkpoint the open read (nil: none or unreadable): when
// the new one is the same, as after a crash of a log that took no write
// since its last open, it is not written again, so a node of many idle
// partitions starts without a durable write per partition. One written by
// Close is always replaced: its recovery point is the log end, and a
// crash after the next append must find the active segment scanned.
func (l *Log) finishRecovery(start int64, drop []int64, scanned []*segment, tailRejected bool, prev *checkpoint, nowMs int64) error {
	for _, base := range drop {
		if err := removeSegmentFiles(l.fs, l.dir, base); err != nil {
			return err
		}
	}
	if len(l.segs) > 0 && l.end < start {
		// A crash took the unsynced tail of data that retention or
		// DeleteRecords had already released: the offsets below start
		// are gone either way. Restart the log at start so that no offset
		// is ever reused.
		l.logger.Warn("log: log end below the start offset; starting empty", "dir", l.dir, "end", l.end, "start", start)
		for _, s := range l.segs {
			if err := s.removeFiles(l.fs); err != nil {
				return err
			}
			s.release()
		}
		l.segs, scanned, l.size = nil, nil, 0
	}
	if len(l.segs) == 0 {
		f, err := openSegmentFile(l.fs, l.dir, start, true)
		if err != nil {
			return err
		}
		s := newSegment(l.dir, start, f)
		l.segs = []*segment{s}
		l.end = start
		scanned = append(scanned, s)
	}
	l.start = max(start, l.segs[0].base)

	active := l.segs[len(l.segs)-1]
	for _, s := range scanned {
		if err := s.log.Sync(); err != nil {
			return err
		}
		if s == active {
			continue
		}
		files, err := s.writeIndexFiles(l.fs)
		for _, f := range files {
			if err == nil {
				err = f.Sync()
			}
		}
		closeAll(files)
		if err != nil {
			s.indexFilesStale = true
			l.logger.Warn("log: cannot write index files", "dir", l.dir, "segment", s.base, "err", err)
		}
	}
	if err := l.removeOrphanIndexes(); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	if err := active.initRollMs(nowMs); err != nil {
		return err
	}
	l.flushed = l.end
	l.recomputeMaxTsLocked()
	rp := l.recoveryPointLocked(active.base)
	if next := (checkpoint{startOffset: l.start, recoveryPoint: rp}); prev == nil || *prev != next {
		if err := writeCheckpoint(l.fs, l.dir, next); err != nil {
			return err
		}
	}
	l.recoveryPoint = rp
	return l.recordRecoveredTail(active, tailRejected)
}

// recordRecoveredTail replaces the tail checkpoint with one covering the
// whole active segment, which is durable now. The old one must be replaced
// durably if it may claim data that is gone: it did not match the segment,
// recovery cut the segment below it, or its segment was deleted. Otherwise
// it is still true, and the new one is written lazily like Sync's.
func (l *Log) recordRecoveredTail(active *segment, tailRejected bool) error {
	old := l.tail
	want := tailCheckpoint{}
	if active.size > 0 {
		want = tailCheckpoint{base: active.base, pos: active.size, next: active.next}
	}
	if want == old {
		return nil
	}
	stale := old.pos > 0 && (tailRejected || old.base > active.base || (old.base == active.base && old.pos > active.size))
	if stale {
		if err := writeTailCheckpointDurably(l.fs, l.dir, want); err != nil {
			return err
		}
		l.tail = want
		return nil
	}
	if want.pos > 0 {
		l.writeTailLocked(want)
	}
	return nil
}

// removeOrphanIndexes deletes index files whose .log is gone.
func (l *Log) removeOrphanIndexes() error {
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	live := make(map[int64]bool, len(l.segs))
	for _, s := range l.segs {
		live[s.base] = true
	}
	for _, name := range names {
		for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
			if base, ok := parseSegmentName(name, suffix); ok && !live[base] {
				if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// prepareDir creates the partition directory if needed and makes its entry
// in the parent durable.
func prepareDir(fs FS, dir string) error {
	if _, err := fs.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(filepath.Clean(dir)))
}

func removeSegmentFiles(fs FS, dir string, base int64) error {
	s := &segment{dir: dir, base: base}
	return s.removeFiles(fs)
}

// rebuild recomputes the segment's in-memory state by scanning its first
// limit bytes with CRC checks. It stops at the first batch that is not
// valid or does not continue the offsets densely and reports why as
// invalid; s.size is then where the valid data ends. err is an I/O error.
func (s *segment) rebuild(limit int64, interval int, modMs int64) (invalid, err error) {
	s.reset()
	return s.scanFrom(newScanner(s.log, 0, limit, true), interval, modMs)
}

// reset forgets everything the segment knows about its batches.
func (s *segment) reset() {
	s.idx, s.tidx = nil, nil
	s.bytesSinceIndex, s.size, s.next = 0, 0, s.base
	s.maxTs, s.maxTsOffset, s.rollMs = -1, -1, -1
	s.indexFilesStale = true
}

// scanFrom continues the segment's state with the batches sc walks, as
// rebuild describes.
func (s *segment) scanFrom(sc *scanner, interval int, modMs int64) (invalid, err error) {
	for {
		pos := sc.pos
		h, _, err := sc.next()
		if err == io.EOF {
			return nil, nil
		}
		if errors.Is(err, errInvalid) {
			return err, nil
		}
		if err != nil {
			return nil, err
		}
		if h.BaseOffset != s.next {
			return fmt.Errorf("%w at position %d: base offset %d, expected %d", errInvalid, pos, h.BaseOffset, s.next), nil
		}
		if h.LastOffset()-s.base > math.MaxUint32 || sc.pos > maxSegmentBytes {
			return fmt.Errorf("%w at position %d: beyond what one segment can index", errInvalid, pos), nil
		}
		s.track(h, pos, interval, modMs)
	}
}

// recoverFromTail rebuilds the segment's state using a tail checkpoint:
// the fsynced prefix it names is walked header by header without reading
// the batches or checking CRCs, and only the rest of the file is scanned
// with CRC checks. It reports ok false, having changed nothing the caller
// relies on, when the checkpoint does not match the file: the file is
// shorter than the prefix, or the headers do not lead exactly to the
// checkpointed position and offset. The caller then scans the whole
// segment.
func (s *segment) recoverFromTail(c tailCheckpoint, size int64, interval int, modMs int64) (ok bool, invalid, err error) {
	if c.base != s.base || c.pos <= 0 || c.pos > size {
		return false, nil, nil
	}
	s.reset()
	sc := newScanner(s.log, 0, c.pos, false)
	sc.headersOnly = true
	bad, err := s.scanFrom(sc, interval, modMs)
	if err != nil || bad != nil || s.size != c.pos || s.next != c.next {
		return false, nil, err
	}
	invalid, err = s.scanFrom(newScanner(s.log, c.pos, size, true), interval, modMs)
	return true, invalid, err
}

// load takes a trusted segment's indexes from its index files and checks
// the batches after the last offset index entry: they must be valid and
// dense and end exactly at the end of the file. It reports false, without
// error, when anything is off, and the caller rebuilds instead.
func (s *segment) load(fs FS, size, modMs int64) (bool, error) {
	maxIndex := size/batch.HeaderSize*offsetEntrySize + offsetEntrySize
	b, err := readWholeFile(fs, s.path(indexSuffix), maxIndex)
	if err != nil {
		return false, nil
	}
	idx, ok := decodeOffsetIndex(b, size)
	if !ok {
		return false, nil
	}
	b, err = readWholeFile(fs, s.path(timeIndexSuffix), size/batch.HeaderSize*timeEntrySize+2*timeEntrySize)
	if err != nil {
		return false, nil
	}
	tidx, ok := decodeTimeIndex(b)
	if !ok {
		return false, nil
	}
	pos, next := int64(0), s.base
	if len(idx) > 0 {
		e := idx[len(idx)-1]
		pos, next = int64(e.pos), s.base+int64(e.rel)
	}
	maxTs, maxTsOffset := int64(-1), int64(-1)
	if e, ok := tidx.last(); ok {
		maxTs, maxTsOffset = e.ts, s.base+int64(e.rel)
	}
	sc := newScanner(s.log, pos, size, true)
	for {
		h, _, err := sc.next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, errInvalid) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if h.BaseOffset != next {
			return false, nil
		}
		next = h.NextOffset()
		if h.MaxTimestamp > maxTs {
			maxTs, maxTsOffset = h.MaxTimestamp, maxTimestampOffset(h)
		}
	}
	if e, ok := tidx.last(); ok && s.base+int64(e.rel) >= next {
		return false, nil
	}
	if next-1-s.base > math.MaxUint32 {
		return false, nil
	}
	s.idx, s.tidx = idx, tidx
	s.size, s.next = size, next
	s.bytesSinceIndex = int(size - pos)
	s.maxTs, s.maxTsOffset = maxTs, maxTsOffset
	s.modifiedMs = modMs
	s.indexFilesStale = false
	return true, nil
}

// initRollMs starts the active segment's age at its first batch's
// timestamp, as Kafka does, but never in the future, so that restarts do
// not postpone time-based rolling.
func (s *segment) initRollMs(nowMs int64) error {
	if s.size == 0 {
		s.rollMs = -1
		return nil
	}
	h, err := readHeaderAt(s, 0, s.size)
	if err != nil {
		return err
	}
	s.rollMs = nowMs
	if h.MaxTimestamp >= 0 && h.MaxTimestamp < nowMs {
		s.rollMs = h.MaxTimestamp
	}
	return nil
}
