package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// harness drives a Shard with an explicit clock and plays the driver:
// it collects responses by token and keeps the appended records as the
// partition would.
type harness struct {
	t        *testing.T
	s        *Shard
	now      int64
	token    uint64
	resps    map[uint64]kmsg.Response
	pending  []Append // appended, not yet durable
	log      []Record // every appended record, in order
	manual   bool     // appends stay pending until durable() is called
	deadline int64
}

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, s: NewShard(cfg), now: 1_000_000, resps: map[uint64]kmsg.Response{}}
	h.absorb(h.s.Loaded(h.now))
	return h
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelayMs = 0
	return cfg
}

func (h *harness) absorb(rd Ready) {
	h.t.Helper()
	if rd.Deadline != 0 && rd.Deadline <= h.now {
		h.t.Fatalf("deadline %d is not after now %d: the driver would spin", rd.Deadline, h.now)
	}
	h.deadline = rd.Deadline
	for _, a := range rd.Appends {
		h.log = append(h.log, a.Records...)
		h.pending = append(h.pending, a)
	}
	for _, r := range rd.Responses {
		if _, dup := h.resps[r.Token]; dup {
			h.t.Fatalf("token %d answered twice", r.Token)
		}
		h.resps[r.Token] = r.Msg
	}
	if !h.manual {
		h.durable()
	}
}

// durable reports every pending append as durable.
func (h *harness) durable() {
	h.t.Helper()
	for len(h.pending) > 0 {
		a := h.pending[0]
		h.pending = h.pending[1:]
		h.absorb(h.s.AppendDone(h.now, a.ID, nil))
	}
}

func (h *harness) step(clientID string, req kmsg.Request) uint64 {
	h.t.Helper()
	h.token++
	h.absorb(h.s.Step(h.now, Input{Token: h.token, ClientID: clientID, ClientHost: "/127.0.0.1", Req: req}))
	return h.token
}

// advance moves the clock, ticking at every deadline on the way as the
// driver's timer would.
func (h *harness) advance(ms int64) {
	h.t.Helper()
	end := h.now + ms
	for h.deadline != 0 && h.deadline <= end {
		h.now = h.deadline
		h.absorb(h.s.Tick(h.now))
	}
	h.now = end
	h.absorb(h.s.Tick(h.now))
}

// answered returns the response to token, failing if there is none yet.
func (h *harness) answered(token uint64) kmsg.Response {
	h.t.Helper()
	r, ok := h.resps[token]
	if !ok {
		h.t.Fatalf("request %d not answered", token)
	}
	return r
}

func (h *harness) waiting(token uint64) {
	h.t.Helper()
	if r, ok := h.resps[token]; ok {
		h.t.Fatalf("request %d answered early: %+v", token, r)
	}
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	wantCode := int16(0)
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: error %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

// joinReq builds a JoinGroup v9 for the consumer protocol.
func joinReq(group, memberID string, instanceID string, protocols ...string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group, r.MemberID = group, memberID
	if instanceID != "" {
		r.InstanceID = &instanceID
	}
	r.SessionTimeoutMillis = 10000
	r.RebalanceTimeoutMillis = 30000
	r.ProtocolType = "consumer"
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	for _, p := range protocols {
		r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: p, Metadata: []byte("meta-" + p)})
	}
	return r
}

func (h *harness) join(client, group, memberID string) uint64 {
	return h.step(client, joinReq(group, memberID, ""))
}

func (h *harness) joinResp(token uint64) *kmsg.JoinGroupResponse {
	h.t.Helper()
	return h.answered(token).(*kmsg.JoinGroupResponse)
}

// newMember does the two-step KIP-394 join and returns the member id and
// the token of the JoinGroup now waiting for the rebalance.
func (h *harness) newMember(client, group string) (string, uint64) {
	h.t.Helper()
	r := h.joinResp(h.join(client, group, ""))
	wantCode(h.t, "first join", r.ErrorCode, kerr.MemberIDRequired)
	return r.MemberID, h.join(client, group, r.MemberID)
}

func syncReq(group, memberID string, gen int32, assign map[string]string) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group, r.MemberID, r.Generation = group, memberID, gen
	for id, a := range assign {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: []byte(a)})
	}
	return r
}

func (h *harness) sync(group, memberID string, gen int32, assign map[string]string) uint64 {
	return h.step("c", syncReq(group, memberID, gen, assign))
}

func (h *harness) heartbeat(group, memberID string, gen int32) int16 {
	h.t.Helper()
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group, r.MemberID, r.Generation = group, memberID, gen
	return h.answered(h.step("c", r)).(*kmsg.HeartbeatResponse).ErrorCode
}

func (h *harness) commit(group, memberID string, gen int32, topic string, partition int32, off int64) uint64 {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 9
	r.Group, r.MemberID, r.Generation = group, memberID, gen
	r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: partition, Offset: off, LeaderEpoch: -1}}}}
	return h.step("c", r)
}

func (h *harness) commitCode(token uint64) int16 {
	h.t.Helper()
	return h.answered(token).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

// fetched returns the committed offset of topic/partition (-1 for none).
func (h *harness) fetched(group, topic string, partition int32) int64 {
	h.t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 8
	r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{partition}}}}}
	resp := h.answered(h.step("c", r)).(*kmsg.OffsetFetchResponse)
	return resp.Groups[0].Topics[0].Partitions[0].Offset
}

func (h *harness) describe(group string) kmsg.DescribeGroupsResponseGroup {
	h.t.Helper()
	r := kmsg.NewPtrDescribeGroupsRequest()
	r.Version = 5
	r.Groups = []string{group}
	return h.answered(h.step("c", r)).(*kmsg.DescribeGroupsResponse).Groups[0]
}

// stableGroup brings n members into a Stable group and returns their ids
// (the first is the leader) and the generation.
func (h *harness) stableGroup(group string, n int) ([]string, int32) {
	h.t.Helper()
	var ids []string
	var tokens []uint64
	for i := range n {
		id, tok := h.newMember("client"+string(rune('a'+i)), group)
		ids = append(ids, id)
		tokens = append(tokens, tok)
		// With no initial delay each arrival starts a rebalance that the
		// earlier members rejoin.
		for j := range i {
			tokens[j] = h.join("c", group, ids[j])
		}
	}
	var gen int32
	for i, tok := range tokens {
		r := h.joinResp(tok)
		wantCode(h.t, "join "+ids[i], r.ErrorCode, nil)
		gen = r.Generation
	}
	assign := map[string]string{}
	for _, id := range ids {
		assign[id] = "assignment-of-" + id
	}
	var syncs []uint64
	for _, id := range ids {
		syncs = append(syncs, h.sync(group, id, gen, assign))
	}
	for i, tok := range syncs {
		r := h.answered(tok).(*kmsg.SyncGroupResponse)
		wantCode(h.t, "sync", r.ErrorCode, nil)
		if string(r.MemberAssignment) != "assignment-of-"+ids[i] {
			h.t.Fatalf("member %s got assignment %q", ids[i], r.MemberAssignment)
		}
	}
	if st := h.describe(group).State; st != "Stable" {
		h.t.Fatalf("group is %s, want Stable", st)
	}
	return ids, gen
}
