package bench

import (
	"encoding/binary"
	"sync"
)

// A load record's value starts with a header the consumers read back:
//
//	[0:8)   send time, Unix nanoseconds (big-endian)
//	[8:12)  run id, so records of another run on the same topic are skipped
//	[12:16) producer index
//	[16:24) the producer's sequence number of the record, from 0
//
// The rest is random bytes from the payload pool.
const loadHeaderSize = 24

type loadHeader struct {
	sentNanos int64
	run       uint32
	producer  uint32
	seq       uint64
}

func (h loadHeader) put(b []byte) {
	binary.BigEndian.PutUint64(b[0:8], uint64(h.sentNanos))
	binary.BigEndian.PutUint32(b[8:12], h.run)
	binary.BigEndian.PutUint32(b[12:16], h.producer)
	binary.BigEndian.PutUint64(b[16:24], h.seq)
}

// parseLoadHeader reads the header; ok is false for a value too short to
// hold one.
func parseLoadHeader(b []byte) (h loadHeader, ok bool) {
	if len(b) < loadHeaderSize {
		return h, false
	}
	return loadHeader{
		sentNanos: int64(binary.BigEndian.Uint64(b[0:8])),
		run:       binary.BigEndian.Uint32(b[8:12]),
		producer:  binary.BigEndian.Uint32(b[12:16]),
		seq:       binary.BigEndian.Uint64(b[16:24]),
	}, true
}

// seenSet remembers which (producer, sequence) pairs were consumed, one
// bit each, so a record delivered twice (a rebalance re-reading from the
// last committed offset) counts once and is reported as a duplicate.
type seenSet struct {
	mu   sync.Mutex
	bits [][]uint64 // per producer
}

func newSeenSet(producers int) *seenSet { return &seenSet{bits: make([][]uint64, producers)} }

// addLocked marks the record and reports whether it was new. The caller
// holds s.mu.
func (s *seenSet) addLocked(producer uint32, seq uint64) bool {
	if int(producer) >= len(s.bits) {
		return false
	}
	w := seq / 64
	b := s.bits[producer]
	if w >= uint64(len(b)) {
		grown := make([]uint64, max(w+1, uint64(2*len(b))))
		copy(grown, b)
		b = grown
		s.bits[producer] = b
	}
	mask := uint64(1) << (seq % 64)
	if b[w]&mask != 0 {
		return false
	}
	b[w] |= mask
	return true
}
