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

// txnCommitCode steps a TxnOffsetCommit at version v, from the member
// given (v3; none before), and returns its code.
func (h *harness) txnCommitCode(v int16, group, memberID string, gen int32, instanceID *string) int16 {
	h.t.Helper()
	r := txnCommitReq(group, 7, "t", 0, 5)
	r.Version, r.MemberID, r.Generation, r.InstanceID = v, memberID, gen, instanceID
	return h.answered(h.step("c", r)).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

// A TxnOffsetCommit naming no member comes from a producer outside the
// group (KafkaJS's sendOffsets, sarama's AddMessageToTxn) and is accepted
// while the group has members, where a plain OffsetCommit naming none is
// not; one naming a member is checked like OffsetCommit's, except that a
// rebalance under way does not refuse it (it applies only when the
// transaction commits), as in Kafka.
func TestTxnOffsetCommitNamingNoMemberIsNotCheckedAgainstTheGroup(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 2)
	wantCode(t, "plain OffsetCommit naming no member", h.commitCode(h.commit("g", "", -1, "t", 0, 5)), kerr.UnknownMemberID)
	for _, v := range []int16{0, 2, 3} {
		wantCode(t, "TxnOffsetCommit naming no member", h.txnCommitCode(v, "g", "", -1, nil), nil)
	}
	wantCode(t, "an unknown member", h.txnCommitCode(3, "g", "ghost", gen, nil), kerr.UnknownMemberID)
	wantCode(t, "a member at an old generation", h.txnCommitCode(3, "g", ids[1], gen-1, nil), kerr.IllegalGeneration)
	wantCode(t, "a member id with generation -1", h.txnCommitCode(3, "g", ids[1], -1, nil), kerr.IllegalGeneration)
	wantCode(t, "a member at its generation", h.txnCommitCode(3, "g", ids[1], gen, nil), nil)

	// Both rejoin: the group awaits the leader's assignment.
	tl, tf := h.join("c", "g", ids[0]), h.join("c", "g", ids[1])
	next := h.joinResp(tl).Generation
	h.joinResp(tf)
	wantCode(t, "plain OffsetCommit before the sync", h.commitCode(h.commit("g", ids[1], next, "t", 0, 8)), kerr.RebalanceInProgress)
	wantCode(t, "TxnOffsetCommit before the sync", h.txnCommitCode(3, "g", ids[1], next, nil), nil)
	wantCode(t, "TxnOffsetCommit naming no member before the sync", h.txnCommitCode(3, "g", "", -1, nil), nil)
}
