package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func txnCommitReq(group string, pid int64, topic string, partition int32, off int64) *kmsg.TxnOffsetCommitRequest {
	r := kmsg.NewPtrTxnOffsetCommitRequest()
	r.Version = 3
	r.TransactionalID, r.Group, r.ProducerID, r.ProducerEpoch, r.Generation = "tx", group, pid, 0, -1
	r.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: partition, Offset: off, LeaderEpoch: -1}}}}
	return r
}

// stableFetch is OffsetFetch with require_stable: the offset and code.
func (h *harness) stableFetch(group, topic string, partition int32) (int64, int16) {
	h.t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.RequireStable = 8, true
	r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{partition}}}}}
	p := h.answered(h.step("c", r)).(*kmsg.OffsetFetchResponse).Groups[0].Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

// The driver awaits a TxnOffsetCommit's append and the transaction's
// marker on different goroutines, so an append written before the marker
// can be reported durable after the marker's outcome was applied. The
// outcome must still cover it: an aborted transaction's offsets must not
// stay pending, to be committed by the producer's next transaction.
func TestMarkerOutcomeCoversOffsetsAppendedBeforeIt(t *testing.T) {
	h := newHarness(t, testConfig())
	h.manual = true
	tok := h.step("c", txnCommitReq("g", 7, "t", 0, 5))
	h.waiting(tok)
	h.absorb(h.s.CompleteTxn(h.now, 7, false)) // the abort marker is durable first
	h.durable()
	wantCode(t, "TxnOffsetCommit", h.answered(tok).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, nil)
	if off, code := h.stableFetch("g", "t", 0); code != 0 || off != -1 {
		t.Fatalf("after the abort: offset %d, %v; want none and no error", off, kerr.ErrorForCode(code))
	}
	// The producer's next transaction commits with nothing of its own.
	h.absorb(h.s.CompleteTxn(h.now, 7, true))
	if off, code := h.stableFetch("g", "t", 0); code != 0 || off != -1 {
		t.Fatalf("after the next commit: offset %d, %v; the aborted offset was committed", off, kerr.ErrorForCode(code))
	}
}

// Offsets whose append was reported before the commit marker's outcome
// become the group's offsets; those of an abort are dropped.
func TestMarkerOutcomeAppliesToPendingOffsets(t *testing.T) {
	h := newHarness(t, testConfig())
	tok := h.step("c", txnCommitReq("g", 7, "t", 0, 5))
	wantCode(t, "TxnOffsetCommit", h.answered(tok).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, nil)
	if _, code := h.stableFetch("g", "t", 0); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("pending offset: %v, want UNSTABLE_OFFSET_COMMIT", kerr.ErrorForCode(code))
	}
	h.absorb(h.s.CompleteTxn(h.now, 7, true))
	if off, code := h.stableFetch("g", "t", 0); code != 0 || off != 5 {
		t.Fatalf("after the commit: offset %d, %v", off, kerr.ErrorForCode(code))
	}
	h.step("c", txnCommitReq("g", 7, "t", 0, 9))
	h.absorb(h.s.CompleteTxn(h.now, 7, false))
	if off, code := h.stableFetch("g", "t", 0); code != 0 || off != 5 {
		t.Fatalf("after the abort: offset %d, %v", off, kerr.ErrorForCode(code))
	}
}
