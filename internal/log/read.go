package log

import (
	"fmt"
	"slices"
	"sort"

	"github.com/weir-broker/weir/internal/batch"
)

// view is a segment captured under Log.mu for reading without it: the
// position to start at and the bytes of whole batches at capture time. The
// holder owns a reference on the segment.
type view struct {
	seg  *segment
	pos  int64
	size int64
}

func releaseViews(vs []view) {
	for _, v := range vs {
		v.seg.release()
	}
}

// segmentIndexLocked returns the index of the segment holding offset: the
// last one whose base is at or below it.
func (l *Log) segmentIndexLocked(offset int64) int {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	return max(i-1, 0)
}

// Read returns whole batches, as stored, starting with the batch holding
// offset. It stops before the first batch whose base offset is at or above
// maxOffset (the high watermark, say) and before the total would exceed
// maxBytes, except that the first batch is returned whole however large it
// is, as Kafka does since KIP-74 so that a consumer can always progress.
// The first batch may begin below the log start offset.
//
// Read returns ErrOffsetOutOfRange for an offset below StartOffset or above
// EndOffset, and nothing for offset == EndOffset or offset >= maxOffset.
func (l *Log) Read(offset, maxOffset int64, maxBytes int) ([]byte, error) {
	return l.ReadInto(nil, offset, maxOffset, maxBytes)
}

// ReadInto is Read reading into buf's storage: it overwrites buf from its
// start and returns the batches in buf[:n], or in a larger array when buf
// is too small. Fetches reuse their buffers this way, so serving a
// consumer does not leave a fresh buffer per partition read to the
// garbage collector.
func (l *Log) ReadInto(buf []byte, offset, maxOffset int64, maxBytes int) ([]byte, error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	if offset < l.start || offset > l.end {
		start, end := l.start, l.end
		l.mu.RUnlock()
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, start, end)
	}
	if offset == l.end || offset >= maxOffset {
		l.mu.RUnlock()
		return nil, nil
	}
	var views []view
	budget := int64(maxBytes)
	for i := l.segmentIndexLocked(offset); i < len(l.segs); i++ {
		s := l.segs[i]
		v := view{seg: s, size: s.size}
		if len(views) == 0 {
			v.pos = s.idx.lookup(s.rel(offset))
		}
		s.acquire()
		views = append(views, v)
		if len(views) > 1 {
			// The first segment may hold less than its indexed position
			// suggests, so only later ones count against the budget.
			if budget -= v.size; budget <= 0 {
				break
			}
		}
	}
	l.mu.RUnlock()
	defer releaseViews(views)

	r := reader{offset: offset, maxOffset: maxOffset, maxBytes: maxBytes, out: buf[:0]}
	for i, v := range views {
		if i == 0 {
			pos, err := seekBatch(v, offset)
			if err != nil {
				return nil, err
			}
			v.pos = pos
		}
		more, err := r.readView(v)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	return r.out, nil
}

// seekBatch walks batch headers from v.pos to the batch holding offset.
func seekBatch(v view, offset int64) (int64, error) {
	pos := v.pos
	for pos < v.size {
		h, err := readHeaderAt(v.seg, pos, v.size)
		if err != nil {
			return 0, err
		}
		if h.NextOffset() > offset {
			return pos, nil
		}
		pos += int64(h.Size())
	}
	return 0, fmt.Errorf("log: read: %w: offset %d not found in segment %d", batch.ErrCorrupt, offset, v.seg.base)
}

// readHeaderAt reads and checks the header of the batch at pos.
func readHeaderAt(s *segment, pos, limit int64) (batch.Header, error) {
	var b [batch.HeaderSize]byte
	if limit-pos < batch.HeaderSize {
		return batch.Header{}, fmt.Errorf("log: segment %d position %d: %w: partial header", s.base, pos, batch.ErrCorrupt)
	}
	if err := readFull(s.log, b[:], pos); err != nil {
		return batch.Header{}, fmt.Errorf("log: segment %d position %d: %w", s.base, pos, err)
	}
	h, err := batch.PeekHeader(b[:])
	if err == nil && int64(h.Size()) > limit-pos {
		err = fmt.Errorf("%w: batch of %d bytes runs past the end", batch.ErrCorrupt, h.Size())
	}
	if err != nil {
		return h, fmt.Errorf("log: segment %d position %d: %w", s.base, pos, err)
	}
	return h, nil
}

// reader accumulates the batches Read returns.
type reader struct {
	offset, maxOffset int64
	maxBytes          int
	out               []byte
	next              int64 // base offset the next batch must have; 0 before the first
}

// readView reads from v.pos as many whole batches as the limits allow, with
// one positional read, and reports whether the next segment may add more.
func (r *reader) readView(v view) (more bool, err error) {
	avail := v.size - v.pos
	if avail <= 0 {
		return true, nil
	}
	want := int64(r.maxBytes - len(r.out))
	if len(r.out) == 0 {
		h, err := readHeaderAt(v.seg, v.pos, v.size)
		if err != nil {
			return false, err
		}
		want = max(want, int64(h.Size()))
	}
	if want < batch.HeaderSize {
		return false, nil
	}
	n := min(want, avail)
	old := len(r.out)
	r.out = slices.Grow(r.out, int(n))[:old+int(n)]
	if err := readFull(v.seg.log, r.out[old:], v.pos); err != nil {
		r.out = r.out[:old]
		return false, fmt.Errorf("log: read segment %d: %w", v.seg.base, err)
	}
	keep := old
	for keep+batch.HeaderSize <= len(r.out) {
		h, err := batch.PeekHeader(r.out[keep:])
		if err != nil {
			return false, fmt.Errorf("log: read segment %d position %d: %w", v.seg.base, v.pos+int64(keep-old), err)
		}
		if keep > 0 && h.BaseOffset != r.next {
			return false, fmt.Errorf("log: read segment %d: %w: batch at %d, expected %d", v.seg.base, batch.ErrCorrupt, h.BaseOffset, r.next)
		}
		if keep+h.Size() > len(r.out) || h.BaseOffset >= r.maxOffset || (keep > 0 && keep+h.Size() > r.maxBytes) {
			r.out = r.out[:keep]
			return false, nil
		}
		keep += h.Size()
		r.next = h.NextOffset()
	}
	if keep < len(r.out) || n < avail {
		r.out = r.out[:keep]
		return false, nil
	}
	return true, nil
}

// OffsetForTimestamp returns the first batch at or after the log start
// offset whose largest timestamp is at least ts: its base offset (or the
// log start offset, if that lies inside it) and that timestamp. The log
// does not decode records, so it answers at batch granularity. ok is false
// when no batch has a timestamp that large.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, ok bool) {
	from := int64(-1) // base of the last segment searched
	for {
		l.mu.RLock()
		if l.closed {
			l.mu.RUnlock()
			return -1, -1, false
		}
		start := l.start
		var v view
		found := false
		for i := l.segmentIndexLocked(start); i < len(l.segs); i++ {
			s := l.segs[i]
			if s.base <= from || s.maxTs < ts {
				continue
			}
			at := max(s.base+int64(s.tidx.lookup(ts)), start)
			v = view{seg: s, pos: s.idx.lookup(s.rel(at)), size: s.size}
			s.acquire()
			found = true
			break
		}
		l.mu.RUnlock()
		if !found {
			return -1, -1, false
		}
		offset, timestamp, ok, err := searchTimestamp(v, ts, start)
		v.seg.release()
		if err != nil || ok {
			return offset, timestamp, ok && err == nil
		}
		from = v.seg.base
	}
}

// searchTimestamp walks the batches of v for the first one at or after
// start whose largest timestamp is at least ts.
func searchTimestamp(v view, ts, start int64) (int64, int64, bool, error) {
	for pos := v.pos; pos < v.size; {
		h, err := readHeaderAt(v.seg, pos, v.size)
		if err != nil {
			return -1, -1, false, err
		}
		if h.NextOffset() > start && h.MaxTimestamp >= ts {
			return max(h.BaseOffset, start), h.MaxTimestamp, true, nil
		}
		pos += int64(h.Size())
	}
	return -1, -1, false, nil
}
