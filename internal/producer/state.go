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
}

// NewState returns an empty state.
func NewState() *State { return &State{entries: make(map[int64]*Entry)} }

// Errors Check returns, each wrapping the Kafka error clients act on.
var (
	ErrFenced     = kerr.InvalidProducerEpoch
	ErrOutOfOrder = kerr.OutOfOrderSequenceNumber
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
	if len(e.Batches) == MaxBatches {
		copy(e.Batches, e.Batches[1:])
		e.Batches = e.Batches[:MaxBatches-1]
	}
	e.Batches = append(e.Batches, BatchMeta{
		FirstSeq: h.BaseSequence, LastSeq: h.LastSequence(),
		BaseOffset: base, LastOffset: base + int64(h.LastOffsetDelta),
		Timestamp: h.MaxTimestamp,
	})
	e.LastUpdateMs = nowMs
}

// Expire forgets producers not heard from since nowMs-expirationMs. A
// forgotten producer's next batch is accepted at any sequence, as a new
// producer's would be: a retry older than the expiration is not
// recognised as a duplicate.
func (s *State) Expire(nowMs, expirationMs int64) int {
	n := 0
	for id, e := range s.entries {
		if nowMs-e.LastUpdateMs > expirationMs {
			delete(s.entries, id)
			n++
		}
	}
	return n
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

// Len is the number of producers tracked.
func (s *State) Len() int { return len(s.entries) }

// Restore replaces the state with entries (from a snapshot).
func (s *State) Restore(entries []Entry) {
	s.entries = make(map[int64]*Entry, len(entries))
	for i := range entries {
		e := entries[i]
		s.entries[e.ProducerID] = &e
	}
}
