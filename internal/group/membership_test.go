package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestFirstJoinWithoutMemberIDGetsMemberIDRequired(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.joinResp(h.join("app", "g", ""))
	wantCode(t, "v9 join without member id", r.ErrorCode, kerr.MemberIDRequired)
	if r.MemberID == "" || r.Generation != -1 {
		t.Fatalf("MEMBER_ID_REQUIRED carries member id %q generation %d", r.MemberID, r.Generation)
	}
	// The pending id holds no place in a rebalance once its session
	// timeout passes without a rejoin.
	if st := h.describe("g").State; st != "Empty" {
		t.Fatalf("group with only a pending member id is %s", st)
	}
	r = h.joinResp(h.join("app", "g", r.MemberID))
	wantCode(t, "rejoin with the given id", r.ErrorCode, nil)
	if r.Generation != 1 || r.LeaderID != r.MemberID || len(r.Members) != 1 {
		t.Fatalf("join: generation %d leader %q members %d", r.Generation, r.LeaderID, len(r.Members))
	}
	if string(r.Members[0].ProtocolMetadata) != "meta-range" || *r.Protocol != "range" {
		t.Fatalf("leader sees metadata %q protocol %q", r.Members[0].ProtocolMetadata, *r.Protocol)
	}
}

func TestJoinBeforeV4AddsTheMemberAtOnce(t *testing.T) {
	h := newHarness(t, testConfig())
	req := joinReq("g", "", "")
	req.Version = 3
	r := h.joinResp(h.step("old", req))
	wantCode(t, "v3 join", r.ErrorCode, nil)
	if r.MemberID == "" || r.Generation != 1 {
		t.Fatalf("v3 join: member %q generation %d", r.MemberID, r.Generation)
	}
}

func TestJoinRejectsBadRequests(t *testing.T) {
	h := newHarness(t, testConfig())
	short := joinReq("g", "", "")
	short.SessionTimeoutMillis = 10
	noProto := joinReq("g", "", "")
	noProto.Protocols = nil
	for _, c := range []struct {
		name string
		req  *kmsg.JoinGroupRequest
		want *kerr.Error
	}{
		{"empty group id", joinReq("", "", ""), kerr.InvalidGroupID},
		{"session timeout below the minimum", short, kerr.InvalidSessionTimeout},
		{"no protocols", noProto, kerr.InconsistentGroupProtocol},
		{"unknown member of an unknown group", joinReq("nope", "ghost", ""), kerr.UnknownMemberID},
	} {
		wantCode(t, c.name, h.joinResp(h.step("c", c.req)).ErrorCode, c.want)
	}
	h.stableGroup("g", 1)
	other := joinReq("g", "", "", "roundrobin")
	r := h.joinResp(h.step("c", other))
	wantCode(t, "protocol no member supports", r.ErrorCode, kerr.InconsistentGroupProtocol)
}

func TestJoinSyncHeartbeatReachStable(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 3)
	for _, id := range ids {
		wantCode(t, "heartbeat in Stable", h.heartbeat("g", id, gen), nil)
	}
	d := h.describe("g")
	if d.Protocol != "range" || len(d.Members) != 3 || string(d.Members[1].MemberAssignment) != "assignment-of-"+ids[1] {
		t.Fatalf("describe: %+v", d)
	}
}

func TestProtocolIsTheOneMostMembersPrefer(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.joinResp(h.step("a", joinReq("g", "", "", "range", "sticky")))
	h.step("a", joinReq("g", a.MemberID, "", "range", "sticky"))
	b := h.joinResp(h.step("b", joinReq("g", "", "", "sticky", "range")))
	h.step("b", joinReq("g", b.MemberID, "", "sticky", "range"))
	c := h.joinResp(h.step("c", joinReq("g", "", "", "sticky", "range")))
	tc := h.step("c", joinReq("g", c.MemberID, "", "sticky", "range"))
	ta := h.step("a", joinReq("g", a.MemberID, "", "range", "sticky"))
	tb := h.step("b", joinReq("g", b.MemberID, "", "sticky", "range"))
	for _, tok := range []uint64{ta, tb, tc} {
		if p := *h.joinResp(tok).Protocol; p != "sticky" {
			t.Fatalf("protocol %q, want sticky (two of three prefer it)", p)
		}
	}
}

func TestInitialDelayWaitsForMoreMembers(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelayMs = 3000
	h := newHarness(t, cfg)
	_, ta := h.newMember("a", "g")
	h.advance(2000)
	h.waiting(ta)
	_, tb := h.newMember("b", "g") // extends the delay to 5000 after a's join
	h.advance(2999)
	h.waiting(ta)
	h.waiting(tb)
	h.advance(1)
	ra, rb := h.joinResp(ta), h.joinResp(tb)
	if ra.Generation != 1 || rb.Generation != 1 || len(ra.Members)+len(rb.Members) != 2 {
		t.Fatalf("after the delay: generations %d, %d; leader saw %d members", ra.Generation, rb.Generation, len(ra.Members)+len(rb.Members))
	}
}

func TestGenerationFencing(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 2)
	wantCode(t, "heartbeat of an old generation", h.heartbeat("g", ids[0], gen-1), kerr.IllegalGeneration)
	wantCode(t, "heartbeat of an unknown member", h.heartbeat("g", "ghost", gen), kerr.UnknownMemberID)
	wantCode(t, "heartbeat of an unknown group", h.heartbeat("nope", ids[0], gen), kerr.UnknownMemberID)
	wantCode(t, "commit of an old generation", h.commitCode(h.commit("g", ids[0], gen-1, "t", 0, 5)), kerr.IllegalGeneration)
	wantCode(t, "simple commit to a group with members", h.commitCode(h.commit("g", "", -1, "t", 0, 5)), kerr.UnknownMemberID)

	// A rejoin of the leader starts a rebalance; the other member hears of
	// it from its heartbeat and may still commit for the old generation.
	tl := h.join("c", "g", ids[0])
	h.waiting(tl)
	wantCode(t, "heartbeat during a rebalance", h.heartbeat("g", ids[1], gen), kerr.RebalanceInProgress)
	wantCode(t, "commit during a rebalance", h.commitCode(h.commit("g", ids[1], gen, "t", 0, 7)), nil)
	wantCode(t, "sync during a rebalance", h.answered(h.sync("g", ids[1], gen, nil)).(*kmsg.SyncGroupResponse).ErrorCode, kerr.RebalanceInProgress)
	tf := h.join("c", "g", ids[1])
	next := h.joinResp(tl).Generation
	if next != gen+1 || h.joinResp(tf).Generation != next {
		t.Fatalf("new generation %d, want %d", next, gen+1)
	}
	// Between join and sync commits wait for the assignment.
	wantCode(t, "commit before sync", h.commitCode(h.commit("g", ids[1], next, "t", 0, 8)), kerr.RebalanceInProgress)
	wantCode(t, "heartbeat before sync", h.heartbeat("g", ids[1], next), nil)
	wantCode(t, "sync of the old generation", h.answered(h.sync("g", ids[1], gen, nil)).(*kmsg.SyncGroupResponse).ErrorCode, kerr.IllegalGeneration)
	if got := h.fetched("g", "t", 0); got != 7 {
		t.Fatalf("committed offset %d, want 7", got)
	}
}

func TestFollowerSyncWaitsForTheLeader(t *testing.T) {
	h := newHarness(t, testConfig())
	a, ta := h.newMember("a", "g")
	h.joinResp(ta)
	b, tb := h.newMember("b", "g")
	ta = h.join("a", "g", a)
	gen := h.joinResp(ta).Generation
	if h.joinResp(tb).Generation != gen {
		t.Fatal("members in different generations")
	}
	h.manual = true
	sb := h.sync("g", b, gen, nil)
	h.waiting(sb)
	sa := h.sync("g", a, gen, map[string]string{a: "pa", b: "pb"})
	// The assignment is handed out only once it is durable.
	h.waiting(sa)
	h.waiting(sb)
	h.durable()
	if got := string(h.answered(sb).(*kmsg.SyncGroupResponse).MemberAssignment); got != "pb" {
		t.Fatalf("follower got %q", got)
	}
	if got := string(h.answered(sa).(*kmsg.SyncGroupResponse).MemberAssignment); got != "pa" {
		t.Fatalf("leader got %q", got)
	}
}

func TestSessionExpiryRemovesTheMemberAndRebalances(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 2)
	// Only ids[0] heartbeats; ids[1]'s session (10s) runs out.
	for range 3 {
		h.advance(3000)
		wantCode(t, "heartbeat", h.heartbeat("g", ids[0], gen), nil)
	}
	h.advance(3000)
	wantCode(t, "heartbeat after the other member expired", h.heartbeat("g", ids[0], gen), kerr.RebalanceInProgress)
	r := h.joinResp(h.join("c", "g", ids[0]))
	if r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("rebalance after expiry: generation %d with %d members", r.Generation, len(r.Members))
	}
	wantCode(t, "heartbeat of the expired member", h.heartbeat("g", ids[1], gen), kerr.UnknownMemberID)
}

func TestMembersThatDoNotRejoinAreRemovedAtTheRebalanceTimeout(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 2)
	tok := h.join("c", "g", ids[0])
	// ids[1] keeps heartbeating (it is alive) but never rejoins.
	for range 9 {
		h.advance(3000)
		h.waiting(tok)
		wantCode(t, "heartbeat", h.heartbeat("g", ids[1], gen), kerr.RebalanceInProgress)
	}
	h.advance(3000) // 30s rebalance timeout
	r := h.joinResp(tok)
	if r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("after the rebalance timeout: generation %d with %d members", r.Generation, len(r.Members))
	}
}

func TestMissingLeaderSyncRestartsTheRebalance(t *testing.T) {
	h := newHarness(t, testConfig())
	a, _ := h.newMember("a", "g")
	b, tb := h.newMember("b", "g")
	ta := h.join("a", "g", a)
	gen := h.joinResp(ta).Generation
	_ = h.joinResp(tb)
	sb := h.sync("g", b, gen, nil)
	// The leader heartbeats but never sends its assignment; the follower
	// waits with its SyncGroup parked.
	for range 9 {
		h.advance(3000)
		wantCode(t, "leader heartbeat", h.heartbeat("g", a, gen), nil)
		h.waiting(sb)
	}
	h.advance(3000) // the 30 s rebalance timeout since the join completed
	wantCode(t, "waiting follower", h.answered(sb).(*kmsg.SyncGroupResponse).ErrorCode, kerr.RebalanceInProgress)
	wantCode(t, "leader that never synced", h.heartbeat("g", a, gen), kerr.UnknownMemberID)
}

func TestLeaveGroup(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 3)

	v0 := kmsg.NewPtrLeaveGroupRequest()
	v0.Group, v0.MemberID = "g", ids[2]
	r := h.answered(h.step("c", v0)).(*kmsg.LeaveGroupResponse)
	wantCode(t, "v0 leave", r.ErrorCode, nil)
	wantCode(t, "heartbeat after a leave", h.heartbeat("g", ids[0], gen), kerr.RebalanceInProgress)

	v3 := kmsg.NewPtrLeaveGroupRequest()
	v3.Version, v3.Group = 3, "g"
	v3.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[1]}, {MemberID: "ghost"}}
	r = h.answered(h.step("c", v3)).(*kmsg.LeaveGroupResponse)
	wantCode(t, "batch leave, top level", r.ErrorCode, nil)
	wantCode(t, "batch leave, known member", r.Members[0].ErrorCode, nil)
	wantCode(t, "batch leave, unknown member", r.Members[1].ErrorCode, kerr.UnknownMemberID)

	// The remaining member rejoins alone; when it leaves too the group
	// is empty and a new generation is stored.
	jr := h.joinResp(h.join("c", "g", ids[0]))
	if jr.Generation != gen+1 || len(jr.Members) != 1 {
		t.Fatalf("after leaves: generation %d with %d members", jr.Generation, len(jr.Members))
	}
	v0.MemberID = ids[0]
	wantCode(t, "last leave", h.answered(h.step("c", v0)).(*kmsg.LeaveGroupResponse).ErrorCode, nil)
	if d := h.describe("g"); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("after the last leave: %s with %d members", d.State, len(d.Members))
	}
}

func TestStaticMemberRejoinReplacesAndFencesTheOldID(t *testing.T) {
	h := newHarness(t, testConfig())
	ja := h.joinResp(h.step("a", joinReq("g", "", "inst-a")))
	wantCode(t, "static join needs no second round", ja.ErrorCode, nil)
	tb := h.step("b", joinReq("g", "", "inst-b")) // waits for a to rejoin
	ta := h.step("a", joinReq("g", ja.MemberID, "inst-a"))
	jb := h.joinResp(tb)
	gen := h.joinResp(ta).Generation
	h.sync("g", ja.MemberID, gen, map[string]string{ja.MemberID: "pa", jb.MemberID: "pb"})
	wantCode(t, "b syncs", h.answered(h.sync("g", jb.MemberID, gen, nil)).(*kmsg.SyncGroupResponse).ErrorCode, nil)

	// inst-b restarts: same instance id, no member id, same subscription.
	nb := h.joinResp(h.step("b2", joinReq("g", "", "inst-b")))
	wantCode(t, "static rejoin", nb.ErrorCode, nil)
	if nb.MemberID == jb.MemberID || nb.Generation != gen {
		t.Fatalf("static rejoin: member %q (old %q) generation %d (was %d)", nb.MemberID, jb.MemberID, nb.Generation, gen)
	}
	if st := h.describe("g").State; st != "Stable" {
		t.Fatalf("static rejoin with the same subscription left the group %s, want Stable", st)
	}
	got := h.answered(h.sync("g", nb.MemberID, gen, nil)).(*kmsg.SyncGroupResponse)
	if string(got.MemberAssignment) != "pb" {
		t.Fatalf("replacement got assignment %q, want the old member's", got.MemberAssignment)
	}
	// The old incarnation is a zombie now.
	inst := "inst-b"
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = 4, "g", jb.MemberID, gen, &inst
	wantCode(t, "zombie heartbeat", h.answered(h.step("b", hb)).(*kmsg.HeartbeatResponse).ErrorCode, kerr.FencedInstanceID)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version, oc.Group, oc.MemberID, oc.Generation, oc.InstanceID = 9, "g", jb.MemberID, gen, &inst
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	wantCode(t, "zombie commit", h.commitCode(h.step("b", oc)), kerr.FencedInstanceID)
	wantCode(t, "replacement heartbeat", h.heartbeat("g", nb.MemberID, gen), nil)

	// A static member leaves by instance id; a wrong member id is fenced.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version, lv.Group = 5, "g"
	lv.Members = []kmsg.LeaveGroupRequestMember{{MemberID: jb.MemberID, InstanceID: &inst}}
	wantCode(t, "leave with a stale member id", h.answered(h.step("c", lv)).(*kmsg.LeaveGroupResponse).Members[0].ErrorCode, kerr.FencedInstanceID)
	lv.Members[0].MemberID = ""
	wantCode(t, "leave by instance id", h.answered(h.step("c", lv)).(*kmsg.LeaveGroupResponse).Members[0].ErrorCode, nil)
}

func TestStaticRejoinWithANewSubscriptionRebalances(t *testing.T) {
	h := newHarness(t, testConfig())
	ja := h.joinResp(h.step("a", joinReq("g", "", "inst-a")))
	h.sync("g", ja.MemberID, ja.Generation, map[string]string{ja.MemberID: "pa"})
	req := joinReq("g", "", "inst-a")
	req.Protocols[0].Metadata = []byte("new topics")
	r := h.joinResp(h.step("a2", req))
	if r.Generation != ja.Generation+1 {
		t.Fatalf("generation %d after a changed subscription, want %d", r.Generation, ja.Generation+1)
	}
}

// Deadlines only ever lie in the future, so a driver's timer never spins;
// the harness checks this after every call.
func TestIdleShardHasNoDeadline(t *testing.T) {
	h := newHarness(t, testConfig())
	if h.deadline != 0 {
		t.Fatalf("empty shard asks for a tick at %d", h.deadline)
	}
}
