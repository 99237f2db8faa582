package sim

import (
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/partition"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// checkStable checks the last stable offset against the transactions of
// the model that are open or whose marker is not yet durable, counting
// pid's transaction as open from the log end if a batch of it is being
// appended (inflight >= 0).
func (r *runner) checkStable(inflight int64) error {
	start, hw, lso := r.p.LogStartOffset(), r.p.HighWatermark(), r.p.LastStableOffset()
	v := viewOf(r.log, start)
	bound := hw
	for _, t := range v.open {
		if t.live >= 0 {
			bound = min(bound, t.live)
		}
	}
	for pid := range r.decided {
		// A transaction whose marker is not durable yet could be
		// reopened by a crash: it holds the LSO like an open one.
		if end := r.markerEnd[pid]; end > hw {
			if t, ok := v.ended[end-1]; ok && t.live >= 0 {
				bound = min(bound, t.live)
			}
		}
	}
	if inflight >= 0 && v.open[inflight] == nil && r.attempt != nil {
		bound = min(bound, max(r.attempt.base, start))
	}
	if lso > bound {
		return r.failf("last stable offset %d passes an open transaction (bound %d; high watermark %d, log start %d, open %v)", lso, bound, hw, start, describeOpen(v))
	}
	return nil
}

func describeOpen(v view) map[int64]openTxn {
	out := map[int64]openTxn{}
	for pid, t := range v.open {
		out[pid] = *t
	}
	return out
}

// check runs the invariants that hold between actions.
func (r *runner) check() error {
	p := r.p
	start, lso, hw, end := p.LogStartOffset(), p.LastStableOffset(), p.HighWatermark(), p.LogEndOffset()
	if !(start <= lso && lso <= hw && hw <= end) {
		return r.failf("offsets out of order: log start %d, LSO %d, HW %d, LEO %d", start, lso, hw, end)
	}
	if end != lastEnd(r.log) {
		return r.failf("log end %d, the model's %d", end, lastEnd(r.log))
	}
	if lso < r.lastLSO {
		return r.failf("last stable offset moved back from %d to %d", r.lastLSO, lso)
	}
	r.lastLSO = lso
	if err := r.checkStable(-1); err != nil {
		return err
	}
	// The LSO lags only behind open transactions.
	v := viewOf(r.log, start)
	lower := hw
	for _, t := range v.open {
		lower = min(lower, max(t.first, start))
	}
	for pid := range r.decided {
		// A transaction whose marker is not durable yet holds the LSO.
		if end := r.markerEnd[pid]; end > hw {
			if t, ok := v.ended[end-1]; ok {
				lower = min(lower, max(t.first, start))
			}
		}
	}
	if r.replicated {
		// A leader reopens with its high watermark at the log start, so
		// markers written before are above it again, and hold the LSO
		// until the follower has them.
		for marker, t := range v.ended {
			if marker+1 > hw {
				lower = min(lower, max(t.first, start))
			}
		}
	}
	if lso < lower {
		return r.failf("last stable offset %d held below %d with no open transaction there (open %v)", lso, lower, describeOpen(v))
	}
	return r.checkReadCommitted(start, lso, v)
}

// checkReadCommitted reads [start, lso) as a read_committed client does,
// dropping the batches of the aborted transactions the partition lists,
// and compares with the plain and committed records of the model.
func (r *runner) checkReadCommitted(start, lso int64, v view) error {
	got, err := r.readCommitted(start, lso)
	if err != nil {
		return err
	}
	want := v.committedIn(start, lso)
	if !slices.Equal(got, want) {
		return r.failf("read_committed [%d, %d) returned %s, want %s", start, lso, strings.Join(got, ","), strings.Join(want, ","))
	}
	return nil
}

// readCommitted is a read_committed consumer's view of [from, to).
func (r *runner) readCommitted(from, to int64) ([]string, error) {
	return r.readCommittedOf(r.p, from, to)
}

// readCommittedOf is readCommitted of another partition.
func (r *runner) readCommittedOf(p *partition.Partition, from, to int64) ([]string, error) {
	batches, err := r.scanOf(p, from, to)
	if err != nil {
		return nil, err
	}
	return clientFilter(batches, from, p.AbortedTransactions(from, to)), nil
}

// clientFilter keeps the records a read_committed client keeps of
// batches read from offset from, the way franz-go does it: each
// producer's listed aborted transactions queue by first offset; a
// transactional batch is dropped while the head of its producer's queue
// is at or below its base offset, and each ABORT marker of the producer
// pops the head. So every ABORT marker must be listed, or the next
// aborted transaction's records would be kept.
func clientFilter(batches []mbatch, from int64, abortedList []kmsg.FetchResponseTopicPartitionAbortedTransaction) []string {
	sort.Slice(abortedList, func(i, j int) bool { return abortedList[i].FirstOffset < abortedList[j].FirstOffset })
	queue := map[int64][]int64{}
	for _, a := range abortedList {
		queue[a.ProducerID] = append(queue[a.ProducerID], a.FirstOffset)
	}
	var out []string
	for _, b := range batches {
		q := queue[b.pid]
		switch {
		case b.control:
			if !b.commit && len(q) > 0 {
				queue[b.pid] = q[1:]
			}
			continue
		case b.txn && len(q) > 0 && q[0] <= b.base:
			continue
		}
		for i, val := range b.values {
			if b.base+int64(i) >= from {
				out = append(out, val)
			}
		}
	}
	return out
}
