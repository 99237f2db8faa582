package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestCommitIsAnsweredAndVisibleOnlyOnceDurable(t *testing.T) {
	h := newHarness(t, testConfig())
	h.manual = true
	tok := h.commit("simple", "", -1, "t", 3, 42)
	h.waiting(tok)
	if got := h.fetched("simple", "t", 3); got != -1 {
		t.Fatalf("offset %d visible before it is durable", got)
	}
	h.durable()
	wantCode(t, "commit", h.commitCode(tok), nil)
	if got := h.fetched("simple", "t", 3); got != 42 {
		t.Fatalf("offset %d, want 42", got)
	}
}

func TestFailedCommitIsNotApplied(t *testing.T) {
	h := newHarness(t, testConfig())
	h.manual = true
	tok := h.commit("g", "", -1, "t", 0, 9)
	a := h.pending[0]
	h.pending = nil
	h.absorb(h.s.AppendDone(h.now, a.ID, errStorage))
	wantCode(t, "commit whose append failed", h.commitCode(tok), kerr.CoordinatorNotAvailable)
	if got := h.fetched("g", "t", 0); got != -1 {
		t.Fatalf("failed commit visible as %d", got)
	}
}

func TestSimpleCommitToAnUnknownGroupNeedsGenerationMinusOne(t *testing.T) {
	h := newHarness(t, testConfig())
	wantCode(t, "generation 3 to an unknown group", h.commitCode(h.commit("g", "m", 3, "t", 0, 1)), kerr.IllegalGeneration)
	wantCode(t, "generation -1", h.commitCode(h.commit("g", "", -1, "t", 0, 1)), nil)
}

func TestCommitAfterTheGroupEmptiedIsASimpleCommit(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 1)
	wantCode(t, "member commit", h.commitCode(h.commit("g", ids[0], gen, "t", 0, 10)), nil)
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Group, lv.MemberID = "g", ids[0]
	h.step("c", lv)
	wantCode(t, "reset by a tool", h.commitCode(h.commit("g", "", -1, "t", 0, 3)), nil)
	if got := h.fetched("g", "t", 0); got != 3 {
		t.Fatalf("offset %d after reset, want 3", got)
	}
}

func TestOffsetMetadataTooLarge(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMetadataBytes = 4
	h := newHarness(t, cfg)
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version, r.Group, r.Generation = 9, "g", -1
	long, short := "12345", "1234"
	r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{
		{Partition: 0, Offset: 1, Metadata: &long}, {Partition: 1, Offset: 2, Metadata: &short},
	}}}
	resp := h.answered(h.step("c", r)).(*kmsg.OffsetCommitResponse)
	wantCode(t, "long metadata", resp.Topics[0].Partitions[0].ErrorCode, kerr.OffsetMetadataTooLarge)
	wantCode(t, "short metadata", resp.Topics[0].Partitions[1].ErrorCode, nil)
	if h.fetched("g", "t", 0) != -1 || h.fetched("g", "t", 1) != 2 {
		t.Fatal("only the partition with acceptable metadata is committed")
	}
}

func TestOffsetFetchAllAndOldVersions(t *testing.T) {
	h := newHarness(t, testConfig())
	h.commit("g", "", -1, "b", 1, 11)
	h.commit("g", "", -1, "a", 0, 10)
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.Group = 7, "g" // Topics nil: everything
	r.RequireStable = true
	resp := h.answered(h.step("c", r)).(*kmsg.OffsetFetchResponse)
	if len(resp.Topics) != 2 || resp.Topics[0].Topic != "a" || resp.Topics[1].Partitions[0].Offset != 11 {
		t.Fatalf("fetch all: %+v", resp.Topics)
	}
	r.Version, r.Topics = 1, []kmsg.OffsetFetchRequestTopic{{Topic: "a", Partitions: []int32{0, 5}}}
	resp = h.answered(h.step("c", r)).(*kmsg.OffsetFetchResponse)
	if ps := resp.Topics[0].Partitions; ps[0].Offset != 10 || ps[1].Offset != -1 {
		t.Fatalf("v1 fetch: %+v", ps)
	}
}

func TestOffsetDelete(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 1)
	h.commit("g", ids[0], gen, "other", 0, 5)
	// The member's consumer-protocol subscription names topic "t".
	sub := kmsg.ConsumerMemberMetadata{Topics: []string{"t"}}
	h.s.groups["g"].members[ids[0]].protocols[0].metadata = sub.AppendTo(nil)
	h.commit("g", ids[0], gen, "t", 0, 6)

	del := kmsg.NewPtrOffsetDeleteRequest()
	del.Group = "g"
	del.Topics = []kmsg.OffsetDeleteRequestTopic{
		{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
		{Topic: "other", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
	}
	resp := h.answered(h.step("c", del)).(*kmsg.OffsetDeleteResponse)
	wantCode(t, "subscribed topic", resp.Topics[0].Partitions[0].ErrorCode, kerr.GroupSubscribedToTopic)
	wantCode(t, "unsubscribed topic", resp.Topics[1].Partitions[0].ErrorCode, nil)
	if h.fetched("g", "other", 0) != -1 || h.fetched("g", "t", 0) != 6 {
		t.Fatal("offset delete removed the wrong offsets")
	}
	del.Group = "nope"
	wantCode(t, "unknown group", h.answered(h.step("c", del)).(*kmsg.OffsetDeleteResponse).ErrorCode, kerr.GroupIDNotFound)
}

func TestOffsetsOfEmptyGroupsExpire(t *testing.T) {
	cfg := testConfig()
	cfg.OffsetsRetentionMs = 60_000
	cfg.RetentionCheckMs = 10_000
	h := newHarness(t, cfg)
	ids, gen := h.stableGroup("active", 1)
	h.commit("active", ids[0], gen, "t", 0, 1)
	h.commit("idle", "", -1, "t", 0, 2)
	for range 30 { // 90 s: the active member heartbeats throughout
		h.advance(3000)
		wantCode(t, "heartbeat", h.heartbeat("active", ids[0], gen), nil)
	}
	if h.fetched("active", "t", 0) != 1 {
		t.Fatal("offsets of a group with members expired")
	}
	if h.fetched("idle", "t", 0) != -1 {
		t.Fatal("offsets of an empty group outlived the retention")
	}
	if d := h.describe("idle"); d.State != "Dead" {
		t.Fatalf("empty group with no offsets left is %s, want gone", d.State)
	}
	last := h.log[len(h.log)-1]
	if last.Value != nil {
		t.Fatal("expiry did not write a tombstone")
	}
}

func TestDeleteGroups(t *testing.T) {
	h := newHarness(t, testConfig())
	h.stableGroup("busy", 1)
	h.commit("idle", "", -1, "t", 0, 2)
	h.manual = true
	r := kmsg.NewPtrDeleteGroupsRequest()
	r.Version = 2
	r.Groups = []string{"busy", "idle", "nope"}
	tok := h.step("c", r)
	h.waiting(tok)
	wantCode(t, "commit while the delete is in flight", h.commitCode(h.commit("idle", "", -1, "t", 0, 3)), kerr.CoordinatorNotAvailable)
	h.durable()
	resp := h.answered(tok).(*kmsg.DeleteGroupsResponse)
	wantCode(t, "group with members", resp.Groups[0].ErrorCode, kerr.NonEmptyGroup)
	wantCode(t, "empty group", resp.Groups[1].ErrorCode, nil)
	wantCode(t, "unknown group", resp.Groups[2].ErrorCode, kerr.GroupIDNotFound)
	if h.fetched("idle", "t", 0) != -1 {
		t.Fatal("deleted group still has offsets")
	}
}

func TestListGroupsFiltersByState(t *testing.T) {
	h := newHarness(t, testConfig())
	h.stableGroup("busy", 1)
	h.commit("idle", "", -1, "t", 0, 2)
	r := kmsg.NewPtrListGroupsRequest()
	r.Version = 5
	r.StatesFilter = []string{"stable"}
	resp := h.answered(h.step("c", r)).(*kmsg.ListGroupsResponse)
	if len(resp.Groups) != 1 || resp.Groups[0].Group != "busy" || resp.Groups[0].GroupType != "classic" {
		t.Fatalf("list stable groups: %+v", resp.Groups)
	}
	r.StatesFilter = nil
	if n := len(h.answered(h.step("c", r)).(*kmsg.ListGroupsResponse).Groups); n != 2 {
		t.Fatalf("list all: %d groups", n)
	}
}
