package log

import (
	"errors"
	"fmt"
	"io"

	"github.com/weir-broker/weir/internal/batch"
)

// errInvalid marks bytes in a segment that are not a well-formed batch:
// torn by a crash, cut short, or corrupted. I/O errors are reported as
// themselves, never as errInvalid, so recovery does not truncate data it
// merely failed to read.
var errInvalid = errors.New("invalid batch")

// scanChunk is how much of a segment a scanner reads per call.
const scanChunk = 1 << 20

// headerOnlyBatchBytes is the batch size from which a header walk reads
// only each batch's header: below it, one large read of many small batches
// costs less than a read per header.
const headerOnlyBatchBytes = 8 << 10

// scanner walks the batches of a segment file from a position up to a limit,
// reading in large chunks.
type scanner struct {
	f        File
	pos      int64 // file position of the next batch
	limit    int64 // end of the region to scan
	checkCRC bool

	// headersOnly walks batch headers without reading the batches (next
	// returns no bytes), for data already known to be durable and whole.
	headersOnly bool
	lastSize    int // size of the previous batch, 0 before the first

	buf    []byte
	bufPos int64 // file position of buf[0]
}

func newScanner(f File, pos, limit int64, checkCRC bool) *scanner {
	return &scanner{f: f, pos: pos, limit: limit, checkCRC: checkCRC}
}

// next returns the header and bytes of the batch at the scanner's position
// and moves past it. The bytes alias the scanner's buffer until the next
// call. It returns io.EOF exactly at the limit, an error wrapping errInvalid
// when the bytes there are not a whole valid batch, or an I/O error.
func (s *scanner) next() (batch.Header, []byte, error) {
	if s.pos >= s.limit {
		return batch.Header{}, nil, io.EOF
	}
	head, err := s.window(batch.HeaderSize)
	if err != nil {
		return batch.Header{}, nil, err
	}
	h, err := batch.PeekHeader(head)
	if err != nil {
		return h, nil, fmt.Errorf("%w at position %d: %v", errInvalid, s.pos, err)
	}
	if int64(h.Size()) > s.limit-s.pos {
		return h, nil, fmt.Errorf("%w at position %d: batch of %d bytes runs past the end", errInvalid, s.pos, h.Size())
	}
	if h.LastOffsetDelta < 0 || h.BaseOffset < 0 {
		return h, nil, fmt.Errorf("%w at position %d: offsets %d+%d", errInvalid, s.pos, h.BaseOffset, h.LastOffsetDelta)
	}
	if s.headersOnly {
		s.lastSize = h.Size()
		s.pos += int64(h.Size())
		return h, nil, nil
	}
	b, err := s.window(h.Size())
	if err != nil {
		return h, nil, err
	}
	if s.checkCRC {
		if err := batch.CheckCRC(b, h); err != nil {
			return h, nil, fmt.Errorf("%w at position %d: %v", errInvalid, s.pos, err)
		}
	}
	s.pos += int64(h.Size())
	return h, b, nil
}

// window returns n bytes at the scanner's position, reading more of the file
// if the buffer does not hold them. A short file is errInvalid.
func (s *scanner) window(n int) ([]byte, error) {
	if int64(n) > s.limit-s.pos {
		return nil, fmt.Errorf("%w at position %d: %d bytes left, %d needed", errInvalid, s.pos, s.limit-s.pos, n)
	}
	start := s.pos - s.bufPos
	if s.buf != nil && start >= 0 && start+int64(n) <= int64(len(s.buf)) {
		return s.buf[start : start+int64(n)], nil
	}
	want := max(int64(n), min(scanChunk, s.limit-s.pos))
	if s.headersOnly && (s.lastSize == 0 || s.lastSize >= headerOnlyBatchBytes) {
		want = int64(n)
	}
	if int64(cap(s.buf)) < want {
		s.buf = make([]byte, want)
	}
	s.buf = s.buf[:want]
	if err := readFull(s.f, s.buf, s.pos); err != nil {
		s.buf = nil
		return nil, err
	}
	s.bufPos = s.pos
	return s.buf[:n], nil
}

// readFull reads len(b) bytes at off. A file shorter than expected is
// reported as io.ErrUnexpectedEOF: the caller asked for bytes it believed
// were written.
func readFull(f File, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
