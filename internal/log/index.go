package log

import (
	"encoding/binary"
	"sort"
)

// The offset index (.index) is a sparse map from offset to file position:
// one entry every IndexIntervalBytes of log, each naming a batch by its base
// offset relative to the segment's base and the batch's position in the
// .log file. The first batch of a segment (position 0) is never indexed; a
// lookup below the first entry starts there.
//
// The time index (.timeindex) records how the largest timestamp grows: an
// entry (ts, rel) says that no batch at or before the batch holding offset
// base+rel has a timestamp above ts. Timestamps strictly increase along it.
//
// Both are kept in memory while the log runs. The files are written when a
// segment is sealed and at Close, and are trusted at Open only for segments
// below the recovery point (see recover.go); everything else is rebuilt by
// scanning the .log.

const (
	offsetEntrySize = 8  // relative offset uint32, position uint32
	timeEntrySize   = 12 // timestamp int64, relative offset uint32
)

type offsetEntry struct {
	rel uint32 // batch base offset minus segment base
	pos uint32 // position of the batch in the .log file
}

type timeEntry struct {
	ts  int64  // largest timestamp in the segment up to rel
	rel uint32 // relative offset of the record holding ts
}

type offsetIndex []offsetEntry

// lookup returns the position of the last indexed batch whose base offset is
// at or below rel, or 0.
func (x offsetIndex) lookup(rel uint32) int64 {
	i := sort.Search(len(x), func(i int) bool { return x[i].rel > rel })
	if i == 0 {
		return 0
	}
	return int64(x[i-1].pos)
}

func (x offsetIndex) encode() []byte {
	b := make([]byte, len(x)*offsetEntrySize)
	for i, e := range x {
		binary.BigEndian.PutUint32(b[i*offsetEntrySize:], e.rel)
		binary.BigEndian.PutUint32(b[i*offsetEntrySize+4:], e.pos)
	}
	return b
}

// decodeOffsetIndex parses an .index file and checks that it could describe
// a segment of size bytes: whole entries, offsets and positions strictly
// increasing, positions inside the file.
func decodeOffsetIndex(b []byte, size int64) (offsetIndex, bool) {
	if len(b)%offsetEntrySize != 0 {
		return nil, false
	}
	x := make(offsetIndex, len(b)/offsetEntrySize)
	for i := range x {
		e := offsetEntry{
			rel: binary.BigEndian.Uint32(b[i*offsetEntrySize:]),
			pos: binary.BigEndian.Uint32(b[i*offsetEntrySize+4:]),
		}
		if int64(e.pos) >= size || e.pos == 0 || (i > 0 && (e.rel <= x[i-1].rel || e.pos <= x[i-1].pos)) {
			return nil, false
		}
		x[i] = e
	}
	return x, true
}

type timeIndex []timeEntry

// lookup returns the relative offset from which a search for the first
// batch with a timestamp at or above ts may start: every batch before the
// batch holding it has only smaller timestamps.
func (x timeIndex) lookup(ts int64) uint32 {
	i := sort.Search(len(x), func(i int) bool { return x[i].ts >= ts })
	if i == 0 {
		return 0
	}
	return x[i-1].rel
}

func (x timeIndex) last() (timeEntry, bool) {
	if len(x) == 0 {
		return timeEntry{}, false
	}
	return x[len(x)-1], true
}

func (x timeIndex) encode() []byte {
	b := make([]byte, len(x)*timeEntrySize)
	for i, e := range x {
		binary.BigEndian.PutUint64(b[i*timeEntrySize:], uint64(e.ts))
		binary.BigEndian.PutUint32(b[i*timeEntrySize+8:], e.rel)
	}
	return b
}

// decodeTimeIndex parses a .timeindex file: whole entries, timestamps
// strictly increasing, relative offsets never decreasing.
func decodeTimeIndex(b []byte) (timeIndex, bool) {
	if len(b)%timeEntrySize != 0 {
		return nil, false
	}
	x := make(timeIndex, len(b)/timeEntrySize)
	for i := range x {
		e := timeEntry{
			ts:  int64(binary.BigEndian.Uint64(b[i*timeEntrySize:])),
			rel: binary.BigEndian.Uint32(b[i*timeEntrySize+8:]),
		}
		if i > 0 && (e.ts <= x[i-1].ts || e.rel < x[i-1].rel) {
			return nil, false
		}
		x[i] = e
	}
	return x, true
}
