package sim

// The simulation with every DeleteRecords and retention action run in
// the middle of a read_committed fetch's read of the log.

import (
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	wlog "github.com/weir-broker/weir/internal/log"
)

// runFetchRace is run, except that every DeleteRecords and retention
// action runs in the middle of a read_committed fetch (fetchAround).
func runFetchRace(actions []action) (trace []string, err error) {
	r := newRunner()
	defer func() {
		if p := recover(); p != nil {
			err = r.failf("panic: %v", p)
		}
		trace = r.trace
	}()
	if err := r.open(); err != nil {
		return r.trace, err
	}
	for i, a := range actions {
		r.step = i
		r.trace = append(r.trace, a.String())
		if (a.kind == actDelete || a.kind == actRetention) && a.crashAt == 0 {
			if err := r.fetchAround(a); err != nil {
				return r.trace, err
			}
		} else if err := r.do(a); err != nil {
			return r.trace, err
		}
		if err := r.check(); err != nil {
			return r.trace, err
		}
	}
	return r.trace, nil
}

// fetchAround runs action a in the middle of a read_committed fetch from
// the log start, while the fetch reads the log: the client must keep
// exactly the plain and committed records the model holds in the range
// read, or be told the offset is out of range.
func (r *runner) fetchAround(a action) error {
	start, lso := r.p.LogStartOffset(), r.p.LastStableOffset()
	v := viewOf(r.log, start)
	var want []string
	for val, st := range v.status {
		if off := v.offset[val]; off >= start && off < lso && (st == plainRecord || st == committed) {
			want = append(want, val)
		}
	}
	sort.Slice(want, func(i, j int) bool { return v.offset[want[i]] < v.offset[want[j]] })
	var actErr error
	ran := false
	r.duringRead = func() { ran, actErr = true, r.do(a) }
	data, aborted, err := r.p.ReadCommittedInto(nil, start, lso, 1<<20)
	r.duringRead = nil
	if !ran {
		actErr = r.do(a)
	}
	if actErr != nil {
		return actErr
	}
	if errors.Is(err, wlog.ErrOffsetOutOfRange) {
		return nil
	}
	if err != nil {
		return r.failf("read_committed fetch of [%d, %d): %v", start, lso, err)
	}
	batches, err := parseBatches(data)
	if err != nil {
		return r.failf("fetched batches: %v", err)
	}
	if got := clientFilter(batches, start, aborted); !slices.Equal(got, want) {
		return r.failf("read_committed fetch of [%d, %d) with %s during its read (log start now %d): client kept %s, want %s",
			start, lso, kindNames[a.kind], r.p.LogStartOffset(), strings.Join(got, ","), strings.Join(want, ","))
	}
	return nil
}

// clientFilter is readCommitted's filter over batches already read.
func clientFilter(batches []mbatch, from int64, abortedList []kmsg.FetchResponseTopicPartitionAbortedTransaction) []string {
	sort.Slice(abortedList, func(i, j int) bool { return abortedList[i].FirstOffset < abortedList[j].FirstOffset })
	skipping := map[int64]bool{}
	var out []string
	for _, b := range batches {
		for len(abortedList) > 0 && abortedList[0].FirstOffset <= b.last {
			skipping[abortedList[0].ProducerID] = true
			abortedList = abortedList[1:]
		}
		switch {
		case b.control:
			if !b.commit {
				delete(skipping, b.pid)
			}
			continue
		case b.txn && skipping[b.pid]:
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

// The simulation's schedules, with DeleteRecords and retention inside a
// read_committed fetch.
func TestSimFetchRacingDeleteRecords(t *testing.T) { runSeeds(t, runFetchRace) }
