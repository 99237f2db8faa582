package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cgTopics is the cluster the consumer group tests run against.
var cgTopics = map[string]TopicInfo{
	"t":       {ID: [16]byte{1}, Partitions: 4},
	"logs-a":  {ID: [16]byte{2}, Partitions: 2},
	"logs-b":  {ID: [16]byte{3}, Partitions: 2},
	"metrics": {ID: [16]byte{4}, Partitions: 2},
}

func topicName(id [16]byte) string {
	for name, t := range cgTopics {
		if t.ID == id {
			return name
		}
	}
	return ""
}

// cgMember is a test's view of a consumer-protocol member: what it owns
// and its epoch, as a client keeps them.
type cgMember struct {
	h     *harness
	group string
	id    string
	epoch int32
	owned assignment
}

func (h *harness) cgStep(req kmsg.Request) kmsg.Response {
	h.t.Helper()
	h.token++
	h.absorb(h.s.Step(h.now, Input{Token: h.token, ClientID: "client", ClientHost: "/127.0.0.1", Req: req, Topics: cgTopics}))
	return h.answered(h.token)
}

func cgJoinReq(group, id string, topics ...string) *kmsg.ConsumerGroupHeartbeatRequest {
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version = 1
	r.Group, r.MemberID, r.MemberEpoch = group, id, 0
	r.RebalanceTimeoutMillis = 30000
	r.SubscribedTopicNames = topics
	r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	return r
}

// join joins a member subscribed to topics.
func (h *harness) cgJoin(group, id string, topics ...string) *cgMember {
	h.t.Helper()
	resp := h.cgStep(cgJoinReq(group, id, topics...)).(*kmsg.ConsumerGroupHeartbeatResponse)
	wantCode(h.t, "join", resp.ErrorCode, nil)
	m := &cgMember{h: h, group: group, id: id, owned: assignment{}}
	m.apply(resp)
	return m
}

func (m *cgMember) apply(resp *kmsg.ConsumerGroupHeartbeatResponse) {
	m.epoch = resp.MemberEpoch
	if resp.Assignment != nil {
		m.owned = assignment{}
		for _, t := range resp.Assignment.Topics {
			for _, p := range t.Partitions {
				m.owned.add(topicName(t.TopicID), p)
			}
		}
	}
}

// beat sends a full heartbeat reporting what the member owns and applies
// the answer (revoking at once what the answer leaves out).
func (m *cgMember) beat() *kmsg.ConsumerGroupHeartbeatResponse {
	m.h.t.Helper()
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version = 1
	r.Group, r.MemberID, r.MemberEpoch = m.group, m.id, m.epoch
	r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	for name, ps := range m.owned {
		rt := kmsg.NewConsumerGroupHeartbeatRequestTopic()
		rt.TopicID, rt.Partitions = cgTopics[name].ID, ps
		r.Topics = append(r.Topics, rt)
	}
	resp := m.h.cgStep(r).(*kmsg.ConsumerGroupHeartbeatResponse)
	if resp.ErrorCode == 0 {
		m.apply(resp)
	}
	return resp
}

// settle heartbeats every member until none changes.
func settle(t *testing.T, ms ...*cgMember) {
	t.Helper()
	for round := 0; round < 10; round++ {
		for _, m := range ms {
			wantCode(t, "heartbeat "+m.id, m.beat().ErrorCode, nil)
		}
	}
}

func checkDisjointCovering(t *testing.T, partitions int, ms ...*cgMember) {
	t.Helper()
	seen := map[int32]string{}
	for _, m := range ms {
		for _, p := range m.owned["t"] {
			if other, dup := seen[p]; dup {
				t.Fatalf("partition %d owned by %s and %s", p, other, m.id)
			}
			seen[p] = m.id
		}
	}
	if len(seen) != partitions {
		t.Fatalf("%d of %d partitions owned: %v", len(seen), partitions, seen)
	}
}

func TestConsumerGroupMembersConvergeOnDisjointCoveringAssignments(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.cgJoin("g", "a", "t")
	if a.epoch != 1 || a.owned.size() != 4 {
		t.Fatalf("first member: epoch %d, owns %v; want epoch 1 and all 4", a.epoch, a.owned)
	}
	b := h.cgJoin("g", "b", "t")
	if b.owned.size() != 0 {
		t.Fatalf("second member got %v before the first revoked anything", b.owned)
	}
	settle(t, a, b)
	checkDisjointCovering(t, 4, a, b)
	if a.owned.size() != 2 || a.epoch != 2 || b.epoch != 2 {
		t.Fatalf("after settling: a %v epoch %d, b %v epoch %d", a.owned, a.epoch, b.owned, b.epoch)
	}
}

func TestConsumerGroupHeartbeatAtAnOldEpochIsFenced(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.cgJoin("g", "a", "t")
	b := h.cgJoin("g", "b", "t")
	settle(t, a, b)
	a.epoch = 7
	wantCode(t, "heartbeat at a future epoch", a.beat().ErrorCode, kerr.FencedMemberEpoch)
	a.epoch = 0
	a.owned = assignment{}
	stale := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	stale.Version, stale.Group, stale.MemberID, stale.MemberEpoch = 1, "g", "nobody", 2
	wantCode(t, "unknown member", h.cgStep(stale).(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode, kerr.UnknownMemberID)
}

func TestConsumerGroupMemberThatStopsHeartbeatingLosesItsPartitions(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.cgJoin("g", "a", "t")
	b := h.cgJoin("g", "b", "t")
	settle(t, a, b)
	// a dies: b keeps heartbeating until a's session ends.
	for i := 0; i < 10; i++ {
		h.advance(5000)
		b.beat()
	}
	if b.owned.size() != 4 {
		t.Fatalf("after a's session timeout b owns %v, want all 4", b.owned)
	}
	wantCode(t, "the dead member's heartbeat", a.beat().ErrorCode, kerr.UnknownMemberID)
}

func TestConsumerGroupMemberThatDoesNotRevokeIsRemovedAfterItsRebalanceTimeout(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.cgJoin("g", "a", "t")
	b := h.cgJoin("g", "b", "t")
	// a heartbeats but never reports giving up the partitions b needs.
	for i := 0; i < 8; i++ {
		h.advance(5000)
		r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		r.Version, r.Group, r.MemberID, r.MemberEpoch = 1, "g", "a", a.epoch
		h.cgStep(r)
		b.beat()
	}
	if b.owned.size() != 4 {
		t.Fatalf("b owns %v after a held on past its rebalance timeout", b.owned)
	}
}

func TestConsumerGroupLeaveGivesPartitionsToTheOthers(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.cgJoin("g", "a", "t")
	b := h.cgJoin("g", "b", "t")
	settle(t, a, b)
	leave := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	leave.Version, leave.Group, leave.MemberID, leave.MemberEpoch = 1, "g", "a", -1
	resp := h.cgStep(leave).(*kmsg.ConsumerGroupHeartbeatResponse)
	wantCode(t, "leave", resp.ErrorCode, nil)
	if resp.MemberEpoch != -1 {
		t.Fatalf("leave answered epoch %d, want -1", resp.MemberEpoch)
	}
	settle(t, b)
	if b.owned.size() != 4 {
		t.Fatalf("b owns %v after a left", b.owned)
	}
}

func TestConsumerGroupStaticMemberRejoiningTakesBackItsAssignment(t *testing.T) {
	h := newHarness(t, testConfig())
	join := func(id string) *cgMember {
		r := cgJoinReq("g", id, "t")
		inst := "instance-1"
		r.InstanceID = &inst
		resp := h.cgStep(r).(*kmsg.ConsumerGroupHeartbeatResponse)
		wantCode(t, "static join "+id, resp.ErrorCode, nil)
		m := &cgMember{h: h, group: "g", id: id, owned: assignment{}}
		m.apply(resp)
		return m
	}
	a := join("a1")
	b := h.cgJoin("g", "b", "t")
	settle(t, a, b)
	had, epoch := a.owned.clone(), a.epoch

	r := cgJoinReq("g", "a2", "t")
	inst := "instance-1"
	r.InstanceID = &inst
	wantCode(t, "another member with a held instance id", h.cgStep(r).(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode, kerr.UnreleasedInstanceID)

	leave := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	leave.Version, leave.Group, leave.MemberID, leave.MemberEpoch, leave.InstanceID = 1, "g", "a1", -2, &inst
	wantCode(t, "static leave", h.cgStep(leave).(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode, nil)
	a2 := join("a2")
	if !a2.owned.equal(had) || a2.epoch != epoch {
		t.Fatalf("rejoined static member: owns %v at epoch %d, want %v at %d", a2.owned, a2.epoch, had, epoch)
	}
}

func TestConsumerGroupRegexSubscriptionIsResolvedByTheBroker(t *testing.T) {
	h := newHarness(t, testConfig())
	r := cgJoinReq("g", "a")
	r.SubscribedTopicNames = nil
	re := "logs-.*"
	r.SubscribedTopicRegex = &re
	resp := h.cgStep(r).(*kmsg.ConsumerGroupHeartbeatResponse)
	wantCode(t, "regex join", resp.ErrorCode, nil)
	m := &cgMember{owned: assignment{}}
	m.apply(resp)
	if m.owned.size() != 4 || len(m.owned["logs-a"]) != 2 || len(m.owned["logs-b"]) != 2 {
		t.Fatalf("regex logs-.* assigned %v, want both logs topics' partitions only", m.owned)
	}
	bad := "logs-("
	r = cgJoinReq("g", "b")
	r.SubscribedTopicRegex = &bad
	wantCode(t, "invalid regex", h.cgStep(r).(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode, kerr.InvalidRegularExpression)
}

func TestConsumerGroupOffsetCommitsAreCheckedByMemberEpoch(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.cgJoin("g", "a", "t")
	commit := func(member string, epoch int32, p int32) int16 {
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Version = 9
		r.Group, r.MemberID, r.Generation = "g", member, epoch
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, 10
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
		return h.cgStep(r).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "commit at the member's epoch", commit("a", a.epoch, 0), nil)
	wantCode(t, "commit at a future epoch", commit("a", a.epoch+1, 0), kerr.StaleMemberEpoch)
	wantCode(t, "commit by an unknown member", commit("x", a.epoch, 0), kerr.UnknownMemberID)
	wantCode(t, "commit by no member while the group has members", commit("", -1, 0), kerr.UnknownMemberID)

	b := h.cgJoin("g", "b", "t")
	settle(t, a, b)
	lost := b.owned["t"][0]
	wantCode(t, "commit at an old epoch of a partition moved away", commit("a", 1, lost), kerr.StaleMemberEpoch)
	wantCode(t, "commit at an old epoch of a partition still held", commit("a", 1, a.owned["t"][0]), nil)

	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version = 9
	fg := kmsg.NewOffsetFetchRequestGroup()
	fg.Group, fg.MemberID, fg.MemberEpoch = "g", &a.id, a.epoch-1
	fetch.Groups = append(fetch.Groups, fg)
	wantCode(t, "offset fetch at an old epoch", h.cgStep(fetch).(*kmsg.OffsetFetchResponse).Groups[0].ErrorCode, kerr.StaleMemberEpoch)
	fetch.Groups[0].MemberEpoch = a.epoch
	wantCode(t, "offset fetch at the member's epoch", h.cgStep(fetch).(*kmsg.OffsetFetchResponse).Groups[0].ErrorCode, nil)
}

func TestClassicAndConsumerProtocolsConvertOnlyEmptyGroups(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, _ := h.stableGroup("classic", 1)
	wantCode(t, "consumer heartbeat on a classic group with members",
		h.cgStep(cgJoinReq("classic", "x", "t")).(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode, kerr.GroupIDNotFound)

	a := h.cgJoin("consumer", "a", "t")
	tok := h.join("client", "consumer", "")
	wantCode(t, "classic join on a consumer group with members", h.joinResp(tok).ErrorCode, kerr.InconsistentGroupProtocol)

	// Emptied, each converts.
	leave := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	leave.Version, leave.Group, leave.MemberID, leave.MemberEpoch = 1, "consumer", a.id, -1
	h.cgStep(leave)
	tok = h.join("client", "consumer", "")
	if code := h.joinResp(tok).ErrorCode; code != kerr.MemberIDRequired.Code {
		t.Fatalf("classic join on an empty consumer group: %v, want MEMBER_ID_REQUIRED (a classic join under way)", kerr.ErrorForCode(code))
	}
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version = 0
	lv.Group, lv.MemberID = "classic", ids[0]
	h.step("client", lv)
	h.cgJoin("classic", "y", "t")
}

func TestConsumerGroupSurvivesReplay(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.cgJoin("g", "a", "t")
	b := h.cgJoin("g", "b", "t")
	settle(t, a, b)
	h2 := replayed(t, h)
	a.h, b.h = h2, h2
	wantCode(t, "heartbeat after replay", a.beat().ErrorCode, nil)
	wantCode(t, "heartbeat after replay", b.beat().ErrorCode, nil)
	checkDisjointCovering(t, 4, a, b)
	desc := kmsg.NewPtrConsumerGroupDescribeRequest()
	desc.Groups = []string{"g"}
	g := h2.cgStep(desc).(*kmsg.ConsumerGroupDescribeResponse).Groups[0]
	if g.ErrorCode != 0 || len(g.Members) != 2 || g.State != "Stable" || g.Epoch != a.epoch {
		t.Fatalf("described after replay: %+v", g)
	}
}

func TestConsumerGroupTxnOffsetCommitsAreCheckedByMemberEpochUnlessAnonymous(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.cgJoin("g", "a", "t")
	code := func(member string, epoch int32) int16 {
		r := txnCommitReq("g", 7, "t", 0, 5)
		r.MemberID, r.Generation = member, epoch
		return h.cgStep(r).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "a member's transactional commit at its epoch", code("a", a.epoch), nil)
	wantCode(t, "a member's transactional commit at a future epoch", code("a", a.epoch+1), kerr.StaleMemberEpoch)
	wantCode(t, "a transactional commit by an unknown member", code("x", a.epoch), kerr.UnknownMemberID)
	wantCode(t, "a transactional commit naming no member (KIP-447: fenced by the transaction)", code("", -1), nil)
}

func TestConsumerGroupIsListedAsConsumerTypeAndDeletedOnlyWhenEmpty(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.cgJoin("g", "a", "t")
	list := kmsg.NewPtrListGroupsRequest()
	list.Version = 5
	lg := h.cgStep(list).(*kmsg.ListGroupsResponse).Groups
	if len(lg) != 1 || lg[0].GroupType != "consumer" || lg[0].GroupState != "Stable" {
		t.Fatalf("ListGroups: %+v", lg)
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g"}
	wantCode(t, "deleting a consumer group with members", h.cgStep(del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, kerr.NonEmptyGroup)
	leave := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	leave.Version, leave.Group, leave.MemberID, leave.MemberEpoch = 1, "g", a.id, -1
	h.cgStep(leave)
	wantCode(t, "deleting the emptied consumer group", h.cgStep(del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, nil)
	if h2 := replayed(t, h); len(h2.s.groups) != 0 {
		t.Fatalf("a deleted consumer group came back on replay: %v", h2.s.groups)
	}
}

func TestEmptyClassicGroupConvertedToConsumerKeepsItsOffsetsAcrossReplay(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 1)
	h.commit("g", ids[0], gen, "t", 0, 42)
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Group, lv.MemberID = "g", ids[0]
	h.step("client", lv)
	a := h.cgJoin("g", "a", "t")
	h2 := replayed(t, h)
	if got := h2.fetched("g", "t", 0); got != 42 {
		t.Fatalf("offset after conversion and replay: %d, want 42", got)
	}
	a.h = h2
	wantCode(t, "the consumer member's heartbeat after replay", a.beat().ErrorCode, nil)
	if g := h2.s.groups["g"]; g.cg == nil || len(g.members) != 0 {
		t.Fatalf("replayed group is not the consumer group alone: %+v", g)
	}
}
