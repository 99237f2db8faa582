package log

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
)

// TxnOutcomes tells a compaction pass what became of transactional
// batches, which the log alone cannot tell: the outcome is in a marker
// further on, and only the partition's producer state connects the two.
// The zero value decides nothing, and every transactional batch is kept
// whole.
type TxnOutcomes struct {
	// StableOffset is the last stable offset when the pass began: every
	// transaction with data below it has ended (its marker is written).
	// Nothing at or past it is compacted; the zero value compacts nothing.
	StableOffset int64
	// Aborted reports whether the transactional batch of producerID at
	// offset, below StableOffset, belongs to an aborted transaction.
	Aborted func(producerID, offset int64) bool
}

// batchRole is what a compaction pass may do with a batch's records.
type batchRole int

const (
	// keepWhole: a control batch, a transaction not known to have ended,
	// or anything at or past the stable offset. Its records stay and
	// supersede nothing.
	keepWhole batchRole = iota
	// compactRecords: plain and idempotent batches, and committed
	// transactions. Each record stays only while it is its key's latest.
	compactRecords
	// dropRecords: an aborted transaction. No consumer that honours
	// markers ever sees its records, so all go and supersede nothing.
	dropRecords
)

func (t TxnOutcomes) role(h batch.Header) batchRole {
	switch {
	case h.Control():
		return keepWhole
	case h.LastOffset() >= t.StableOffset:
		// At or past the last stable offset an open transaction may still
		// commit records of the same keys: a later record there must
		// neither supersede them nor go as a tombstone (as Kafka, the
		// cleaner stops at the first unstable offset).
		return keepWhole
	case !h.Transactional():
		return compactRecords
	case t.Aborted == nil:
		return keepWhole
	case t.Aborted(h.ProducerID, h.BaseOffset):
		return dropRecords
	default:
		return compactRecords
	}
}

// latestOffsets reads the views in order and returns the offset of the
// latest record of each key, and how many views it covers: all of them, or
// fewer once maxCompactKeys is reached.
func latestOffsets(views []view, txns TxnOutcomes) (map[string]int64, int, error) {
	keys := make(map[string]int64)
	for i, v := range views {
		err := eachBatch(v, func(h batch.Header, b []byte) error {
			if txns.role(h) != compactRecords {
				return nil
			}
			recs, err := batch.DecodeRecords(b)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Key != nil {
					keys[string(r.Key)] = h.BaseOffset + int64(r.OffsetDelta)
				}
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
		if len(keys) >= maxCompactKeys {
			return keys, i + 1, nil
		}
	}
	return keys, len(views), nil
}

// eachBatch calls fn for every batch of v, checking CRCs. b aliases a
// buffer valid until fn returns.
func eachBatch(v view, fn func(h batch.Header, b []byte) error) error {
	sc := newScanner(v.seg.log, 0, v.size, true)
	for {
		h, b, err := sc.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("log: compact: segment %d: %w", v.seg.base, err)
		}
		if err := fn(h, b); err != nil {
			return fmt.Errorf("log: compact: segment %d offset %d: %w", v.seg.base, h.BaseOffset, err)
		}
	}
}

// recordTimeMs is a record's timestamp as consumers see it.
func recordTimeMs(h batch.Header, r kmsg.Record) int64 {
	if h.Attributes&batch.AttrTimestampType != 0 {
		return h.MaxTimestamp // LogAppendTime: the batch's time is every record's
	}
	return h.BaseTimestamp + r.TimestampDelta64
}

// segmentRewriter writes the compacted form of one segment. Nothing is
// written until the first batch that changes: up to there the new file is
// a copy of the old.
type segmentRewriter struct {
	l    *Log
	v    view
	tmp  string
	f    File
	w    *bufio.Writer
	size int64
	prev *pendingBatch // last batch seen, not yet written: it may widen
}

// pendingBatch is an output batch that may still absorb the offsets of
// batches whose records all go.
type pendingBatch struct {
	b        []byte
	h        batch.Header
	pos      int64 // where the original batch starts in the old file
	modified bool  // b differs from the original bytes
}

// widenable reports whether the batch may cover more offsets: not for an
// idempotent (or transactional) batch, whose last sequence follows from
// its last offset delta, nor a control one.
func (p *pendingBatch) widenable() bool {
	return !p.h.Idempotent() && !p.h.Control()
}

// rewriteSegment compacts one segment into a new file and returns it, or
// nil when nothing in the segment goes.
func (l *Log) rewriteSegment(v view, keys map[string]int64, horizonMs int64, txns TxnOutcomes) (*cleanedSegment, error) {
	rw := &segmentRewriter{l: l, v: v, tmp: v.seg.path(logSuffix) + cleanedSuffix}
	c := &cleanedSegment{old: v.seg, oldSize: v.size, tmp: rw.tmp}
	pos := int64(0)
	err := eachBatch(v, func(h batch.Header, b []byte) error {
		at := pos
		pos += int64(h.Size())
		role := txns.role(h)
		if role == keepWhole {
			return rw.next(&pendingBatch{b: clone(b), h: h, pos: at})
		}
		recs, err := batch.DecodeRecords(b)
		if err != nil {
			return err
		}
		kept := recs[:0:0]
		for _, r := range recs {
			off := h.BaseOffset + int64(r.OffsetDelta)
			switch {
			case role == dropRecords:
				c.removed++
				continue
			case r.Key == nil:
			case keys[string(r.Key)] != off:
				c.removed++
				continue
			case r.Value == nil && recordTimeMs(h, r) < horizonMs:
				c.removed++
				c.tombstones++
				continue
			}
			kept = append(kept, r)
		}
		switch {
		case len(kept) == len(recs):
			return rw.next(&pendingBatch{b: clone(b), h: h, pos: at})
		case len(kept) > 0 || h.Idempotent() || rw.prev == nil || !rw.prev.widenable() || h.LastOffset()-rw.prev.h.BaseOffset > math.MaxInt32:
			// Some records stay, or the batch must stay for its producer's
			// sequence numbers, or no batch before can take its offsets.
			nb, err := batch.Reassemble(h, kept)
			if err != nil {
				return err
			}
			return rw.next(&pendingBatch{b: nb, h: h, pos: at, modified: true})
		default:
			// Every record went: the batch before takes its offsets.
			p := rw.prev
			p.h.LastOffsetDelta = int32(h.LastOffset() - p.h.BaseOffset)
			batch.SetLastOffsetDelta(p.b, p.h.LastOffsetDelta)
			p.modified = true
			return nil
		}
	})
	if err == nil {
		err = rw.flushPrev()
	}
	if err == nil && rw.f != nil {
		err = rw.finish()
	}
	if err != nil {
		if rw.f != nil {
			rw.f.Close()
			l.fs.Remove(rw.tmp)
		}
		return nil, err
	}
	if rw.f == nil {
		return nil, nil // unchanged
	}
	c.size = rw.size
	return c, nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// next makes p the pending batch, writing out the one before.
func (rw *segmentRewriter) next(p *pendingBatch) error {
	if err := rw.flushPrev(); err != nil {
		return err
	}
	rw.prev = p
	return nil
}

// flushPrev writes the pending batch: as is once the output has diverged,
// and not at all while the output is still a copy of the old file.
func (rw *segmentRewriter) flushPrev() error {
	p := rw.prev
	rw.prev = nil
	if p == nil || (rw.f == nil && !p.modified) {
		return nil
	}
	if rw.f == nil {
		if err := rw.start(p.pos); err != nil {
			return err
		}
	}
	n, err := rw.w.Write(p.b)
	rw.size += int64(n)
	return err
}

// start creates the new file and copies the old one's first n bytes.
func (rw *segmentRewriter) start(n int64) error {
	f, err := rw.l.fs.OpenFile(rw.tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	rw.f, rw.w = f, bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, min(n, scanChunk))
	for off := int64(0); off < n; {
		chunk := buf[:min(int64(len(buf)), n-off)]
		if err := readFull(rw.v.seg.log, chunk, off); err != nil {
			return err
		}
		if _, err := rw.w.Write(chunk); err != nil {
			return err
		}
		off += int64(len(chunk))
	}
	rw.size = n
	return nil
}

// finish makes the new file durable.
func (rw *segmentRewriter) finish() error {
	err := rw.w.Flush()
	if err == nil {
		err = rw.f.Sync()
	}
	if cerr := rw.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("log: compact: write %s: %w", rw.tmp, err)
	}
	return nil
}
