// Package producer keeps the idempotence state of one partition: for each
// producer id, its epoch and the sequence ranges and offsets of its last
// five batches. The partition consults it before every append of an
// idempotent batch (KIP-98, KIP-360):
//
//   - an epoch below the current one is a zombie: INVALID_PRODUCER_EPOCH;
//   - a batch whose sequence range equals one of the last five is a retry:
//     nothing is written and the original offsets are returned;
//   - a higher epoch must start at sequence 0;
//   - otherwise the first sequence must follow the last one (wrapping at
//     int32 max), else OUT_OF_ORDER_SEQUENCE_NUMBER;
//   - a producer id the partition does not know (never seen, or expired)
//     may start at any sequence, as Kafka 2.5+ allows.
//
// State is pure: no clock, no I/O. Time comes in as arguments.
package producer

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/batch"
)

// MaxBatches is how many batches per producer are remembered for
// duplicate detection: a client keeps at most five in flight.
const MaxBatches = 5

// BatchMeta is what is remembered of one appended batch.
type BatchMeta struct {
	FirstSeq   int32 `json:"firstSeq"`
	LastSeq    int32 `json:"lastSeq"`
	BaseOffset int64 `json:"baseOffset"`
	LastOffset int64 `json:"lastOffset"`
	Timestamp  int64 `json:"timestamp"` // the batch's max timestamp
}

// Entry is one producer's state in a partition.
type Entry struct {
	ProducerID int64       `json:"producerId"`
	Epoch      int16       `json:"epoch"`
	Batches    []BatchMeta `json:"batches"` // oldest first, at most MaxBatches
	// LastUpdateMs is the broker's wall-clock time of the last append, the
	// clock producer.id.expiration.ms is measured on.
	LastUpdateMs int64 `json:"lastUpdateMs"`
	// InTxn is set while a transaction of this producer is open in the
	// partition; TxnFirstOffset is then its first offset, which holds the
	// last stable offset back.
	InTxn          bool  `json:"inTxn,omitempty"`
	TxnFirstOffset int64 `json:"txnFirstOffset,omitempty"`
	// LastOffset is the last offset of the producer's newest batch or
	// marker in the partition: once the log start passes it, nothing of
	// the producer is left to replay, and the entry goes (TruncateHead).
	LastOffset int64 `json:"lastOffset"`
}

// AbortedTxn is an aborted transaction's span in a partition: read_committed
// consumers drop its producer's batches between FirstOffset and the abort
// marker at LastOffset.
type AbortedTxn struct {
	ProducerID  int64 `json:"producerId"`
	FirstOffset int64 `json:"firstOffset"`
	LastOffset  int64 `json:"lastOffset"`
}

// LastSeq is the last sequence appended, or -1.
func (e *Entry) LastSeq() int32 {
	if len(e.Batches) == 0 {
		return -1
	}
	return e.Batches[len(e.Batches)-1].LastSeq
}

// LastTimestamp is the max timestamp of the last batch, or -1.
func (e *Entry) LastTimestamp() int64 {
	if len(e.Batches) == 0 {
		return -1
	}
	return e.Batches[len(e.Batches)-1].Timestamp
}

// State is the producer state of one partition. It is not safe for
// concurrent use; the partition's append lock guards it.
type State struct {
	entries map[int64]*Entry
	aborted []AbortedTxn // by LastOffset
	markers map[int64]Marker
}

// Marker is the last numbered transaction marker applied for a producer
// (its transaction's number among its transactional id's, End the offset
// after it, Ms when it was applied). It is not in the log, so a replay
// cannot rebuild it: snapshots keep it, and it is forgotten only after
// producer.id.expiration.ms, not with the producer's entry, so a late
// copy of an applied marker is known as one across a reopen or a move of
// the log start.
type Marker struct {
	ProducerID int64 `json:"producerId"`
	Seq        int64 `json:"seq"`
	End        int64 `json:"end"`
	Ms         int64 `json:"ms"`
}

// NewState returns an empty state.
func NewState() *State { return &State{entries: make(map[int64]*Entry)} }

// Errors Check returns, each wrapping the Kafka error clients act on.
var (
	ErrFenced     = kerr.InvalidProducerEpoch
	ErrOutOfOrder = kerr.OutOfOrderSequenceNumber
	// ErrNotTransactional refuses a non-transactional batch of a producer
	// whose transaction is open in the partition: its epoch would fence
	// the transaction's marker.
	ErrNotTransactional = kerr.InvalidTxnState
)

// Check decides what to do with an idempotent batch: append it (nil, nil),
// treat it as a retry of an appended batch (its metadata, nil), or refuse
// it (an error).
func (s *State) Check(h batch.Header) (*BatchMeta, error) {
	e, ok := s.entries[h.ProducerID]
	if !ok {
		return nil, nil
	}
	switch {
	case h.ProducerEpoch < e.Epoch:
		return nil, ErrFenced
	case e.InTxn && !h.Transactional():
		return nil, ErrNotTransactional
	case h.BaseSequence < 0:
		// A coordinator's own transactional write (TxnOffsetCommit records
		// in __consumer_offsets) carries no sequence: only the epoch counts.
		return nil, nil
	case h.ProducerEpoch > e.Epoch:
		if h.BaseSequence != 0 {
			return nil, ErrOutOfOrder
		}
		return nil, nil
	}
	last := h.LastSequence()
	for i := range e.Batches {
		if b := &e.Batches[i]; b.FirstSeq == h.BaseSequence && b.LastSeq == last {
			dup := *b
			return &dup, nil
		}
	}
	if len(e.Batches) > 0 && !inSequence(e.LastSeq(), h.BaseSequence) {
		return nil, ErrOutOfOrder
	}
	return nil, nil
}

// inSequence reports whether next follows last, wrapping at int32 max.
func inSequence(last, next int32) bool {
	return next == last+1 || (last == 1<<31-1 && next == 0)
}

// Update records an appended idempotent batch whose base offset is base.
// nowMs is the broker's wall-clock time.
func (s *State) Update(h batch.Header, base, nowMs int64) {
	e, ok := s.entries[h.ProducerID]
	if !ok {
		e = &Entry{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch}
		s.entries[h.ProducerID] = e
	}
	if h.ProducerEpoch != e.Epoch {
		e.Epoch = h.ProducerEpoch
		e.Batches = e.Batches[:0]
	}
	if h.Transactional() && !e.InTxn {
		e.InTxn, e.TxnFirstOffset = true, base
	}
	e.LastOffset = base + int64(h.LastOffsetDelta)
	e.LastUpdateMs = nowMs
	if h.BaseSequence < 0 {
		return // no sequence to remember (see Check)
	}
	if len(e.Batches) == MaxBatches {
		copy(e.Batches, e.Batches[1:])
		e.Batches = e.Batches[:MaxBatches-1]
	}
	e.Batches = append(e.Batches, BatchMeta{
		FirstSeq: h.BaseSequence, LastSeq: h.LastSequence(),
		BaseOffset: base, LastOffset: base + int64(h.LastOffsetDelta),
		Timestamp: h.MaxTimestamp,
	})
}

// Expire forgets producers not heard from since nowMs-expirationMs. A
// forgotten producer's next batch is accepted at any sequence, as a new
// producer's would be: a retry older than the expiration is not
// recognised as a duplicate.
func (s *State) Expire(nowMs, expirationMs int64) int {
	n := 0
	for id, e := range s.entries {
		if !e.InTxn && nowMs-e.LastUpdateMs > expirationMs {
			delete(s.entries, id)
			n++
		}
	}
	for id, m := range s.markers {
		if nowMs-m.Ms > expirationMs {
			delete(s.markers, id)
		}
	}
	return n
}

// Has reports whether the state holds producer pid.
func (s *State) Has(pid int64) bool {
	_, ok := s.entries[pid]
	return ok
}

// Entries returns copies of every entry, by producer id.
func (s *State) Entries() []Entry {
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.entries {
		c := *e
		c.Batches = append([]BatchMeta(nil), e.Batches...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}

// MarkerCopy reports whether a marker of producer pid numbered seq is a
// copy of one already applied (numbered at or below the last applied),
// and where that one ends. An unnumbered marker (seq 0) is never a copy.
func (s *State) MarkerCopy(pid, seq int64) (end int64, copy bool) {
	m, ok := s.markers[pid]
	if !ok || seq <= 0 || seq > m.Seq {
		return 0, false
	}
	return m.End, true
}

// NoteMarker records that producer pid's marker numbered seq was applied,
// ending at end, at nowMs.
func (s *State) NoteMarker(pid, seq, end, nowMs int64) {
	if seq <= 0 {
		return
	}
	if s.markers == nil {
		s.markers = make(map[int64]Marker)
	}
	s.markers[pid] = Marker{ProducerID: pid, Seq: seq, End: end, Ms: nowMs}
}

// Markers lists the numbered markers recorded, by producer id.
func (s *State) Markers() []Marker {
	out := make([]Marker, 0, len(s.markers))
	for _, m := range s.markers {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}

// RestoreMarkers replaces the recorded markers (from a snapshot).
func (s *State) RestoreMarkers(ms []Marker) {
	s.markers = make(map[int64]Marker, len(ms))
	for _, m := range ms {
		s.markers[m.ProducerID] = m
	}
}

// Len is the number of producers tracked.
func (s *State) Len() int { return len(s.entries) }

// Restore replaces the state with entries and aborted transactions (from
// a snapshot).
func (s *State) Restore(entries []Entry, aborted []AbortedTxn) {
	s.aborted = append([]AbortedTxn(nil), aborted...)
	s.entries = make(map[int64]*Entry, len(entries))
	for i := range entries {
		e := entries[i]
		if e.LastOffset == 0 {
			// A snapshot from before LastOffset was kept: the newest
			// offset the entry still names.
			e.LastOffset = max(e.TxnFirstOffset, 0)
			for _, b := range e.Batches {
				e.LastOffset = max(e.LastOffset, b.LastOffset)
			}
		}
		s.entries[e.ProducerID] = &e
	}
}

// TruncateHead forgets what lies below the log start offset start, which
// a replay from start could not learn: producers whose last batch or
// marker is below it, remembered batches that end below it, and aborted
// transactions that end below it. An open transaction that began below
// start keeps its first offset: a batch of it that straddles start is
// still served whole, and clients drop an aborted transaction's batches
// by their base offset (the last stable offset is held no lower than the
// log start by the partition).
func (s *State) TruncateHead(start int64) {
	for id, e := range s.entries {
		if e.LastOffset < start {
			delete(s.entries, id)
			continue
		}
		n := 0
		for _, b := range e.Batches {
			if b.LastOffset >= start {
				e.Batches[n] = b
				n++
			}
		}
		e.Batches = e.Batches[:n]
	}
	i := sort.Search(len(s.aborted), func(i int) bool { return s.aborted[i].LastOffset >= start })
	s.aborted = append(s.aborted[:0], s.aborted[i:]...)
}

// CheckMarker decides whether a transaction marker from the coordinator
// for producer pid at epoch may be written: a marker of an older epoch
// than the producer's is a zombie coordinator's and is refused.
func (s *State) CheckMarker(pid int64, epoch int16) error {
	if e, ok := s.entries[pid]; ok && epoch < e.Epoch {
		return ErrFenced
	}
	return nil
}

// ApplyMarker records a COMMIT or ABORT marker written at offset: the
// producer's open transaction in this partition ends, and an aborted one
// is remembered for read_committed fetches. A marker at a newer epoch
// (an abort by the coordinator after a timeout) fences the older epoch.
func (s *State) ApplyMarker(pid int64, epoch int16, commit bool, offset, nowMs int64) {
	e, ok := s.entries[pid]
	if !ok {
		e = &Entry{ProducerID: pid, Epoch: epoch}
		s.entries[pid] = e
	}
	if epoch > e.Epoch {
		e.Epoch = epoch
		e.Batches = e.Batches[:0]
	}
	if !commit {
		// Every ABORT marker is listed, also one that ends no data here
		// (the data lay below the log start, or never arrived): clients
		// such as franz-go pair each ABORT marker they read with the next
		// listed transaction of its producer, so a missing entry would
		// make them keep the next aborted transaction's records.
		first := offset
		if e.InTxn {
			first = e.TxnFirstOffset
		}
		s.aborted = append(s.aborted, AbortedTxn{ProducerID: pid, FirstOffset: first, LastOffset: offset})
	}
	e.InTxn, e.TxnFirstOffset = false, 0
	e.LastOffset = offset
	e.LastUpdateMs = nowMs
}

// OpenTxnFirstOffset is the first offset of producer pid's open
// transaction; ok is false when none is open.
func (s *State) OpenTxnFirstOffset(pid int64) (offset int64, ok bool) {
	if e, found := s.entries[pid]; found && e.InTxn {
		return e.TxnFirstOffset, true
	}
	return 0, false
}

// FirstUnstableOffset is the first offset of the earliest open
// transaction; ok is false when none is open.
func (s *State) FirstUnstableOffset() (offset int64, ok bool) {
	for _, e := range s.entries {
		if e.InTxn && (!ok || e.TxnFirstOffset < offset) {
			offset, ok = e.TxnFirstOffset, true
		}
	}
	return offset, ok
}

// AbortedIn lists the aborted transactions overlapping [from, to): those a
// read_committed fetch of that range must be told about.
func (s *State) AbortedIn(from, to int64) []AbortedTxn {
	var out []AbortedTxn
	for _, a := range s.aborted {
		if a.LastOffset >= from && a.FirstOffset < to {
			out = append(out, a)
		}
	}
	return out
}

// Aborted returns the aborted transactions ending at or after from, for
// snapshots (older ones are below the log start and matter no more).
func (s *State) Aborted(from int64) []AbortedTxn {
	i := sort.Search(len(s.aborted), func(i int) bool { return s.aborted[i].LastOffset >= from })
	return append([]AbortedTxn(nil), s.aborted[i:]...)
}
