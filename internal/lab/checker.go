package lab

import (
	"fmt"
	"sort"
)

// Guarantee is the delivery guarantee a configuration claims.
type Guarantee int

// Guarantees, weakest first.
const (
	// NoGuarantee claims nothing: the lab only measures.
	NoGuarantee Guarantee = iota
	// AtMostOnce claims no duplicates; records may be lost.
	AtMostOnce
	// AtLeastOnce claims no acknowledged record is lost; duplicates may
	// appear.
	AtLeastOnce
	// ExactlyOnce claims neither loss nor duplicates, and no aborted or
	// uncommitted data seen by a read_committed consumer.
	ExactlyOnce
)

func (g Guarantee) String() string {
	return [...]string{"none", "at-most-once", "at-least-once", "exactly-once"}[g]
}

// Fate is what became of a record in the log, as a read_uncommitted
// reader with control records sees it.
type Fate int

// Fates.
const (
	// Plain is a record outside any transaction.
	Plain Fate = iota
	// Committed is a transactional record whose transaction committed.
	Committed
	// Aborted is a transactional record whose transaction aborted.
	Aborted
	// Open is a transactional record with no marker after it yet.
	Open
)

// Delivery is one record as a consumer received (or processed) it.
type Delivery struct {
	ID        int64
	Partition int32
	Offset    int64
}

// PartOffset names one offset in one partition.
type PartOffset struct {
	Partition int32
	Offset    int64
}

// History is everything known about one scenario's records: ids are
// 0..Sent-1, and the ids of one partition were sent in increasing order.
type History struct {
	Sent int
	// Acked[id] is set when the sender was told the record is stored.
	Acked []bool
	// Delivered lists receptions in the order the consumer saw them.
	Delivered []Delivery
	// Fates, when known, gives the fate of each offset in the log; a
	// delivery at an Aborted or Open offset is a read_committed violation.
	Fates map[PartOffset]Fate
	// WantCounts and GotCounts, for a stateful processor's row, are the
	// count per key the input implies and the one the processor's state
	// holds; a key whose counts differ is a wrong aggregate.
	WantCounts, GotCounts map[string]int64
	// Saga, for the order saga's row, is what its topics hold; Sent is
	// then the number of orders placed.
	Saga *SagaHistory
}

// Result is what the checker measured for one scenario.
type Result struct {
	Sent         int `json:"sent"`
	Acked        int `json:"acknowledged"`
	Delivered    int `json:"delivered"`  // distinct ids received
	Lost         int `json:"lost"`       // acknowledged and never received
	Duplicated   int `json:"duplicated"` // receptions beyond the first
	Reordered    int `json:"reordered"`  // first receptions behind a later id of their partition
	RCViolations int `json:"readCommittedViolations"`
	Unknown      int `json:"unknown"` // receptions of ids never sent
	// WrongAggregates counts keys whose aggregate differs from the input's
	// (stateful rows).
	WrongAggregates int `json:"wrongAggregates,omitempty"`
	// Saga is the saga row's measure; Acked and Delivered then count
	// the orders acknowledged and those that reached a terminal state.
	Saga *SagaResult `json:"saga,omitempty"`
}

// Check measures a history.
func Check(h History) Result {
	r := Result{Sent: h.Sent}
	for id := 0; id < h.Sent && id < len(h.Acked); id++ {
		if h.Acked[id] {
			r.Acked++
		}
	}
	seen := make([]int, h.Sent)
	maxID := map[int32]int64{}
	for _, d := range h.Delivered {
		if d.ID < 0 || d.ID >= int64(h.Sent) {
			r.Unknown++
			continue
		}
		if f, ok := h.Fates[PartOffset{d.Partition, d.Offset}]; ok && (f == Aborted || f == Open) {
			r.RCViolations++
		}
		seen[d.ID]++
		if seen[d.ID] > 1 {
			r.Duplicated++
			continue
		}
		r.Delivered++
		if m, ok := maxID[d.Partition]; ok && d.ID < m {
			r.Reordered++
		} else {
			maxID[d.Partition] = d.ID
		}
	}
	for id := 0; id < h.Sent && id < len(h.Acked); id++ {
		if h.Acked[id] && seen[id] == 0 {
			r.Lost++
		}
	}
	for k, n := range h.WantCounts {
		if h.GotCounts[k] != n {
			r.WrongAggregates++
		}
	}
	for k := range h.GotCounts {
		if _, ok := h.WantCounts[k]; !ok {
			r.WrongAggregates++
		}
	}
	if h.Saga != nil {
		s := CheckSaga(h.Saga)
		r.Saga, r.Acked, r.Delivered = &s, h.Saga.Acked, s.Completed+s.Cancelled
	}
	return r
}

// Violations lists how r breaks g; empty when the guarantee holds.
func (r Result) Violations(g Guarantee) []string {
	var v []string
	if r.Unknown > 0 {
		v = append(v, fmt.Sprintf("%d records never sent were received", r.Unknown))
	}
	if (g == AtLeastOnce || g == ExactlyOnce) && r.Lost > 0 {
		v = append(v, fmt.Sprintf("%d acknowledged records lost", r.Lost))
	}
	if (g == AtMostOnce || g == ExactlyOnce) && r.Duplicated > 0 {
		v = append(v, fmt.Sprintf("%d duplicates", r.Duplicated))
	}
	if g == ExactlyOnce && r.WrongAggregates > 0 {
		v = append(v, fmt.Sprintf("%d keys with a wrong aggregate", r.WrongAggregates))
	}
	if s := r.Saga; s != nil {
		for _, c := range []struct {
			n    int
			what string
		}{
			{s.NotOneTerminal, "orders without exactly one terminal state"},
			{s.LeftTerminal, "orders that left a terminal state"},
			{s.WrongCompensations, "compensations not sent and applied exactly when required"},
			{s.LevelMismatches, "stocks or balances that differ from the completed orders'"},
		} {
			if c.n > 0 {
				v = append(v, fmt.Sprintf("%d %s", c.n, c.what))
			}
		}
	}
	if g == ExactlyOnce && r.RCViolations > 0 {
		v = append(v, fmt.Sprintf("%d aborted or uncommitted records seen", r.RCViolations))
	}
	sort.Strings(v)
	return v
}
