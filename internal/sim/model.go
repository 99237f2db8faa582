package sim

import (
	"sort"

	"github.com/weir-broker/weir/internal/producer"
)

// mbatch is one batch the partition accepted, as the model remembers it.
type mbatch struct {
	base, last        int64
	pid               int64 // -1 for a plain batch
	txn, control      bool
	commit            bool // control: COMMIT rather than ABORT
	firstSeq, lastSeq int32
	values            []string
	ts                int64
}

// status is what a record's transaction made of it.
type status int

const (
	plainRecord status = iota
	committed
	aborted
	open
)

// openTxn is a transaction the model log shows open.
type openTxn struct {
	first int64 // the offset of its first batch
	// live is the first offset of it a replay from the log start can
	// see: its first batch ending at or after the log start, no lower
	// than the log start; -1 when all of it is below the log start.
	live int64
}

// view is what the model log says, read from the beginning.
type view struct {
	status map[string]status
	offset map[string]int64
	open   map[int64]*openTxn
	// ended maps the offset of each marker that closed a transaction
	// holding data to that transaction.
	ended map[int64]openTxn
}

// viewOf reads the model log as consumers must see it with the log
// starting at start.
func viewOf(log []mbatch, start int64) view {
	v := view{status: map[string]status{}, offset: map[string]int64{}, open: map[int64]*openTxn{}, ended: map[int64]openTxn{}}
	pending := map[int64][]string{}
	for _, b := range log {
		switch {
		case b.control:
			st := aborted
			if b.commit {
				st = committed
			}
			for _, val := range pending[b.pid] {
				v.status[val] = st
			}
			if t := v.open[b.pid]; t != nil {
				v.ended[b.base] = *t
			}
			delete(pending, b.pid)
			delete(v.open, b.pid)
			continue
		case b.txn:
			t := v.open[b.pid]
			if t == nil {
				t = &openTxn{first: b.base, live: -1}
				v.open[b.pid] = t
			}
			if t.live < 0 && b.last >= start {
				t.live = max(b.base, start)
			}
			pending[b.pid] = append(pending[b.pid], b.values...)
		}
		for i, val := range b.values {
			v.offset[val] = b.base + int64(i)
			if !b.txn {
				v.status[val] = plainRecord
			}
		}
	}
	for _, vals := range pending {
		for _, val := range vals {
			v.status[val] = open
		}
	}
	return v
}

// committedIn lists the plain and committed records in [from, to), in
// offset order: what a read_committed consumer of that range must get.
func (v view) committedIn(from, to int64) []string {
	var out []string
	for val, st := range v.status {
		if off := v.offset[val]; off >= from && off < to && (st == plainRecord || st == committed) {
			out = append(out, val)
		}
	}
	sort.Slice(out, func(i, j int) bool { return v.offset[out[i]] < v.offset[out[j]] })
	return out
}

// expectation is what producer.State.Check should answer for a batch.
type expectation int

const (
	expectAppend expectation = iota
	expectDuplicate
	expectOutOfOrder
)

// expect works out, from the model log alone, what the partition must do
// with a batch of pid holding sequences [firstSeq, lastSeq]: the producer
// state remembers a producer while it has a batch or marker at or after
// the log start, and its last five batches that end there.
func expect(log []mbatch, start, pid int64, firstSeq, lastSeq int32) (expectation, *mbatch) {
	known := false
	var last []*mbatch
	for i := range log {
		b := &log[i]
		if b.pid != pid || b.last < start {
			continue
		}
		known = true
		if !b.control {
			last = append(last, b)
		}
	}
	if !known {
		return expectAppend, nil
	}
	if len(last) > producer.MaxBatches {
		last = last[len(last)-producer.MaxBatches:]
	}
	for _, b := range last {
		if b.firstSeq == firstSeq && b.lastSeq == lastSeq {
			return expectDuplicate, b
		}
	}
	if len(last) > 0 && last[len(last)-1].lastSeq+1 != firstSeq {
		return expectOutOfOrder, nil
	}
	return expectAppend, nil
}

// nextSeq is the sequence a producer continues at, as the model log has
// it; ok is false when the log holds no batch of it.
func nextSeq(log []mbatch, pid int64) (int32, bool) {
	for i := len(log) - 1; i >= 0; i-- {
		if b := log[i]; b.pid == pid && !b.control {
			return b.lastSeq + 1, true
		}
	}
	return 0, false
}
