package log

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/weir-broker/weir/internal/batch"
)

// File name suffixes of a segment.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

// segmentName is the file name of a segment part: the base offset padded
// to 20 digits, so names sort in offset order.
func segmentName(base int64, suffix string) string {
	return fmt.Sprintf("%020d%s", base, suffix)
}

// parseSegmentName returns the base offset of a segment file name.
func parseSegmentName(name, suffix string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, suffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// segment is one .log file and its indexes. Fields other than base and log
// are guarded by Log.mu; a segment's file stays open while refs > 0.
type segment struct {
	dir  string
	base int64
	log  File

	size int64 // bytes of whole batches in the file
	next int64 // offset after the last batch; base when empty

	idx             offsetIndex
	tidx            timeIndex
	bytesSinceIndex int    // bytes appended since the last offset index entry
	maxTs           int64  // largest batch timestamp, -1 when none
	maxTsOffset     int64  // offset of the record holding maxTs, -1 when none
	rollMs          int64  // when the segment's age began, for SegmentMs; -1 while empty
	modifiedMs      int64  // last append, for retention of segments without timestamps
	pendingIdx      []File // index files written at seal, awaiting fsync by Sync
	indexFilesStale bool   // on-disk index files do not describe the data
	refs            atomic.Int32
}

func newSegment(dir string, base int64, f File) *segment {
	s := &segment{dir: dir, base: base, log: f, next: base, maxTs: -1, maxTsOffset: -1, rollMs: -1, indexFilesStale: true}
	s.refs.Store(1) // the log's own reference
	return s
}

func (s *segment) path(suffix string) string {
	return filepath.Join(s.dir, segmentName(s.base, suffix))
}

// openSegmentFile opens (creating if asked) the .log file of a segment for
// appending and positional reads.
func openSegmentFile(fs FS, dir string, base int64, create bool) (File, error) {
	flag := os.O_RDWR | os.O_APPEND
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	return fs.OpenFile(filepath.Join(dir, segmentName(base, logSuffix)), flag, 0o644)
}

// acquire takes a reference for a reader; callers hold Log.mu, which
// guarantees the log's own reference is still held.
func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference and closes the files when none remain.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.log.Close()
		s.closePendingIndex()
	}
}

func (s *segment) closePendingIndex() {
	for _, f := range s.pendingIdx {
		f.Close()
	}
	s.pendingIdx = nil
}

// rel converts an absolute offset of this segment to a relative one.
func (s *segment) rel(offset int64) uint32 {
	d := offset - s.base
	if d < 0 {
		return 0
	}
	if d > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(d)
}

// fits reports whether a batch of n bytes ending at offset last can go in
// this segment without overflowing the index entry fields.
func (s *segment) fits(n int, last int64, segmentBytes int64) bool {
	return s.size+int64(n) <= segmentBytes && last-s.base <= math.MaxUint32
}

// track records a batch written at pos: indexes, timestamps, next offset.
// Append and the recovery scan both use it, so a rebuilt index is the index
// appends would have made. nowMs is the modification time to record.
func (s *segment) track(h batch.Header, pos int64, interval int, nowMs int64) {
	if s.bytesSinceIndex >= interval && pos > 0 {
		s.idx = append(s.idx, offsetEntry{rel: s.rel(h.BaseOffset), pos: uint32(pos)})
		if last, ok := s.tidx.last(); s.maxTs >= 0 && (!ok || s.maxTs > last.ts) {
			s.tidx = append(s.tidx, timeEntry{ts: s.maxTs, rel: s.rel(s.maxTsOffset)})
		}
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += h.Size()
	if h.MaxTimestamp > s.maxTs {
		s.maxTs = h.MaxTimestamp
		s.maxTsOffset = maxTimestampOffset(h)
	}
	s.size = pos + int64(h.Size())
	s.next = h.NextOffset()
	s.modifiedMs = nowMs
	s.indexFilesStale = true
}

// maxTimestampOffset guesses which record of a batch holds its largest
// timestamp without decoding records: under LogAppendTime every record has
// it and the first counts; under CreateTime producers stamp records in
// order, so the last one most likely does.
func maxTimestampOffset(h batch.Header) int64 {
	if h.Attributes&batch.AttrTimestampType != 0 {
		return h.BaseOffset
	}
	return h.LastOffset()
}

// finalTimeEntry appends the segment's largest timestamp to the time index
// if the last entry does not already hold it, so a loaded time index tells
// the segment's largest timestamp exactly.
func (s *segment) finalTimeEntry() {
	if last, ok := s.tidx.last(); s.maxTs >= 0 && (!ok || s.maxTs > last.ts) {
		s.tidx = append(s.tidx, timeEntry{ts: s.maxTs, rel: s.rel(s.maxTsOffset)})
	}
}

// writeIndexFiles replaces the .index and .timeindex files with the
// in-memory indexes and returns the open files for the caller to fsync.
func (s *segment) writeIndexFiles(fs FS) ([]File, error) {
	s.finalTimeEntry()
	var files []File
	for _, part := range []struct {
		suffix string
		data   []byte
	}{{indexSuffix, s.idx.encode()}, {timeIndexSuffix, s.tidx.encode()}} {
		f, err := fs.OpenFile(s.path(part.suffix), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			closeAll(files)
			return nil, err
		}
		files = append(files, f)
		if _, err := f.Write(part.data); err != nil {
			closeAll(files)
			return nil, err
		}
	}
	s.indexFilesStale = false
	return files, nil
}

func closeAll(files []File) {
	for _, f := range files {
		f.Close()
	}
}

// largestTimestampMs is the time retention measures a segment by: its
// largest record timestamp, or its last modification when no batch carried
// a timestamp.
func (s *segment) largestTimestampMs() int64 {
	if s.maxTs > 0 {
		return s.maxTs
	}
	return s.modifiedMs
}

// removeFiles deletes the segment's files, the .log first so that a crash
// part way leaves at worst orphan index files, which Open removes.
func (s *segment) removeFiles(fs FS) error {
	var first error
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := fs.Remove(s.path(suffix)); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}
