package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/controller"
)

// An ISR proposal ends before the image moves only when the controller's
// answer shows nothing of it can have been committed: a refusal of the
// change itself, judged on the partition epoch it was made on, or an
// acceptance that changed nothing. Every other answer keeps the proposed
// members counted for the high watermark: an earlier copy of the request
// may have been committed, and an election may pick them.
func TestAnISRProposalEndsOnlyWhenNothingOfItCanHaveBeenCommitted(t *testing.T) {
	ch := controller.ISRChange{PartitionEpoch: 4, LeaderEpoch: 2, NewISR: []int32{1, 2, 3}}
	for _, tc := range []struct {
		name   string
		answer isrAnswer
		ends   bool
	}{
		{"accepted and committed: wait for the image", isrAnswer{partitionEpoch: 5}, false},
		{"accepted with nothing to change", isrAnswer{partitionEpoch: 4}, true},
		{"a replica not eligible", isrAnswer{err: kerr.IneligibleReplica}, true},
		{"an invalid request", isrAnswer{err: kerr.InvalidRequest}, true},
		{"stale partition epoch: an earlier copy may have been committed", isrAnswer{err: kerr.InvalidUpdateVersion}, false},
		{"fenced leader epoch: this image is behind", isrAnswer{err: kerr.FencedLeaderEpoch}, false},
		{"not the leader in the controller's image", isrAnswer{err: kerr.NotLeaderForPartition}, false},
		{"unknown topic id", isrAnswer{err: kerr.UnknownTopicID}, false},
		{"stale broker epoch", isrAnswer{err: kerr.StaleBrokerEpoch}, false},
	} {
		if got := settleISR(ch, tc.answer); got != tc.ends {
			t.Errorf("%s: ends %v, want %v", tc.name, got, tc.ends)
		}
	}
}
