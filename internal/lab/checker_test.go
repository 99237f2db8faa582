package lab

import (
	"slices"
	"testing"
)

func acked(n int, except ...int) []bool {
	a := make([]bool, n)
	for i := range a {
		a[i] = !slices.Contains(except, i)
	}
	return a
}

// deliveries builds receptions of ids, partition id%2, offsets in order.
func deliveries(ids ...int64) []Delivery {
	next := map[int32]int64{}
	var out []Delivery
	for _, id := range ids {
		p := int32(id % 2)
		out = append(out, Delivery{ID: id, Partition: p, Offset: next[p]})
		next[p]++
	}
	return out
}

func TestCheckerMeasuresHandMadeHistories(t *testing.T) {
	tests := []struct {
		name string
		h    History
		want Result
	}{
		{
			name: "every record once in order",
			h:    History{Sent: 4, Acked: acked(4), Delivered: deliveries(0, 1, 2, 3)},
			want: Result{Sent: 4, Acked: 4, Delivered: 4},
		},
		{
			name: "acknowledged record never delivered is lost",
			h:    History{Sent: 4, Acked: acked(4), Delivered: deliveries(0, 1, 3)},
			want: Result{Sent: 4, Acked: 4, Delivered: 3, Lost: 1},
		},
		{
			name: "unacknowledged record never delivered is not lost",
			h:    History{Sent: 4, Acked: acked(4, 2), Delivered: deliveries(0, 1, 3)},
			want: Result{Sent: 4, Acked: 3, Delivered: 3},
		},
		{
			name: "second reception is a duplicate, not a reorder",
			h:    History{Sent: 3, Acked: acked(3), Delivered: deliveries(0, 1, 2, 0)},
			want: Result{Sent: 3, Acked: 3, Delivered: 3, Duplicated: 1},
		},
		{
			name: "earlier id after a later one of its partition is reordered",
			h:    History{Sent: 6, Acked: acked(6), Delivered: deliveries(0, 4, 2, 1, 3, 5)},
			want: Result{Sent: 6, Acked: 6, Delivered: 6, Reordered: 1},
		},
		{
			name: "order across partitions does not count",
			h:    History{Sent: 4, Acked: acked(4), Delivered: deliveries(1, 3, 0, 2)},
			want: Result{Sent: 4, Acked: 4, Delivered: 4},
		},
		{
			name: "aborted and open records seen are read_committed violations",
			h: History{Sent: 3, Acked: acked(3), Delivered: deliveries(0, 1, 2), Fates: map[PartOffset]Fate{
				{0, 0}: Committed, {1, 0}: Aborted, {0, 1}: Open,
			}},
			want: Result{Sent: 3, Acked: 3, Delivered: 3, RCViolations: 2},
		},
		{
			name: "ids never sent are unknown",
			h:    History{Sent: 2, Acked: acked(2), Delivered: append(deliveries(0, 1), Delivery{ID: 7})},
			want: Result{Sent: 2, Acked: 2, Delivered: 2, Unknown: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Check(tt.h); got != tt.want {
				t.Fatalf("Check = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCheckerJudgesEachGuarantee(t *testing.T) {
	lost := Result{Lost: 1}
	dup := Result{Duplicated: 1}
	rc := Result{RCViolations: 1}
	tests := []struct {
		g      Guarantee
		r      Result
		broken bool
	}{
		{AtMostOnce, lost, false},
		{AtMostOnce, dup, true},
		{AtLeastOnce, lost, true},
		{AtLeastOnce, dup, false},
		{ExactlyOnce, lost, true},
		{ExactlyOnce, dup, true},
		{ExactlyOnce, rc, true},
		{AtLeastOnce, rc, false},
		{NoGuarantee, Result{Lost: 3, Duplicated: 3}, false},
		{NoGuarantee, Result{Unknown: 1}, true},
		{ExactlyOnce, Result{Sent: 5, Acked: 5, Delivered: 5}, false},
		{ExactlyOnce, Result{WrongAggregates: 1}, true},
	}
	for _, tt := range tests {
		if got := len(tt.r.Violations(tt.g)) > 0; got != tt.broken {
			t.Errorf("%s with %+v: broken = %v, want %v (%v)", tt.g, tt.r, got, tt.broken, tt.r.Violations(tt.g))
		}
	}
}

func TestFatesFollowTheNextMarkerOfTheProducer(t *testing.T) {
	// Producer 1 commits, producer 2 aborts, producer 3 never ends; a
	// non-transactional record sits between them.
	recs := []logRecord{
		{part: 0, off: 0, pid: 1, txn: true},
		{part: 0, off: 1, pid: 2, txn: true},
		{part: 0, off: 2, pid: -1},
		{part: 0, off: 3, pid: 1, control: true, commit: true},
		{part: 0, off: 4, pid: 2, control: true},
		{part: 0, off: 5, pid: 3, txn: true},
		{part: 1, off: 0, pid: 1, txn: true}, // producer 1's marker in partition 0 does not end this one
	}
	got, markerAt := fatesOf(recs)
	want := map[PartOffset]Fate{
		{0, 0}: Committed, {0, 1}: Aborted, {0, 2}: Plain, {0, 5}: Open, {1, 0}: Open,
	}
	if len(got) != len(want) {
		t.Fatalf("fates = %v, want %v", got, want)
	}
	for k, f := range want {
		if got[k] != f {
			t.Errorf("fate of %v = %d, want %d", k, got[k], f)
		}
	}
	if markerAt[PartOffset{0, 0}] != 3 || markerAt[PartOffset{0, 1}] != 4 {
		t.Errorf("marker offsets = %v, want 0@0 -> 3 and 0@1 -> 4", markerAt)
	}
}

// A stateful row's aggregate is wrong when a key's count differs from
// the input's, when a key the input has is missing, or when the state
// holds a key the input never had.
func TestCheckerCountsWrongAggregates(t *testing.T) {
	want := map[string]int64{"a": 3, "b": 1}
	for _, tc := range []struct {
		got   map[string]int64
		wrong int
	}{
		{map[string]int64{"a": 3, "b": 1}, 0},
		{map[string]int64{"a": 4, "b": 1}, 1},
		{map[string]int64{"a": 3}, 1},
		{map[string]int64{"a": 3, "b": 1, "c": 1}, 1},
		{map[string]int64{"a": 2, "b": 2}, 2},
	} {
		if r := Check(History{WantCounts: want, GotCounts: tc.got}); r.WrongAggregates != tc.wrong {
			t.Errorf("counts %v against %v: %d wrong aggregates, want %d", tc.got, want, r.WrongAggregates, tc.wrong)
		}
	}
}
