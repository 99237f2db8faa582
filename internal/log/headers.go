package log

import (
	"errors"
	"fmt"
	"io"

	"github.com/weir-broker/weir/internal/batch"
)

// ReadHeaders calls visit with the header of every batch from the one
// holding offset up to the first whose base offset is at or above
// maxOffset, in order, reading only the headers where batches are large
// enough for that to pay (see headerOnlyBatchBytes) and checking no CRC.
// It is for rebuilding state that batch headers carry, such as the
// producer state after a restart, without copying the log. It returns
// ErrOffsetOutOfRange as Read does, an error wrapping batch.ErrCorrupt
// for a header that does not parse, and visit's error, which stops it.
func (l *Log) ReadHeaders(offset, maxOffset int64, visit func(batch.Header) error) error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	if offset < l.start || offset > l.end {
		start, end := l.start, l.end
		l.mu.RUnlock()
		return fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, start, end)
	}
	var views []view
	if offset < l.end && offset < maxOffset {
		for i := l.segmentIndexLocked(offset); i < len(l.segs); i++ {
			s := l.segs[i]
			v := view{seg: s, size: s.size}
			if len(views) == 0 {
				v.pos = s.idx.lookup(s.rel(offset))
			}
			s.acquire()
			views = append(views, v)
		}
	}
	l.mu.RUnlock()
	defer releaseViews(views)

	for i, v := range views {
		if i == 0 {
			pos, err := seekBatch(v, offset)
			if err != nil {
				return err
			}
			v.pos = pos
		}
		sc := newScanner(v.seg.log, v.pos, v.size, false)
		sc.headersOnly = true
		for {
			h, _, err := sc.next()
			if err == io.EOF {
				break
			}
			if errors.Is(err, errInvalid) {
				return fmt.Errorf("log: read headers of segment %d: %w: %v", v.seg.base, batch.ErrCorrupt, err)
			}
			if err != nil {
				return fmt.Errorf("log: read headers of segment %d: %w", v.seg.base, err)
			}
			if h.BaseOffset >= maxOffset {
				return nil
			}
			if err := visit(h); err != nil {
				return err
			}
		}
	}
	return nil
}
