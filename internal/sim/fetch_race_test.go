package sim

// The simulation with every DeleteRecords and retention action run in
// the middle of a read_committed fetch's read of the log.

import (
	"errors"
	"slices"
	"strings"
	"testing"

	wlog "github.com/weir-broker/weir/internal/log"
)

// runFetchRace is run, except that every DeleteRecords and retention
// action runs in the middle of a read_committed fetch (fetchAround).
func runFetchRace(actions []action) ([]string, error) {
	return runWith(actions, func(r *runner, a action) error {
		if (a.kind == actDelete || a.kind == actRetention) && a.crashAt == 0 {
			return r.fetchAround(a)
		}
		return r.do(a)
	})
}

// fetchAround runs action a in the middle of a read_committed fetch from
// the log start, while the fetch reads the log: the client must keep
// exactly the plain and committed records the model holds in the range
// read, or be told the offset is out of range.
func (r *runner) fetchAround(a action) error {
	start, lso := r.p.LogStartOffset(), r.p.LastStableOffset()
	want := viewOf(r.log, start).committedIn(start, lso)
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

// The simulation's schedules, with DeleteRecords and retention inside a
// read_committed fetch.
func TestSimFetchRacingDeleteRecords(t *testing.T) { runSeeds(t, runFetchRace) }
