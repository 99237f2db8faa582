package group

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var errStorage = errors.New("disk on fire")

// replayed builds a new shard from everything h appended, as a restart
// does.
func replayed(t *testing.T, h *harness) *harness {
	t.Helper()
	h2 := &harness{t: t, s: NewShard(h.s.cfg), now: h.now + 5000, resps: map[uint64]kmsg.Response{}, token: h.token}
	for _, r := range h.log {
		if err := h2.s.Replay(r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	h2.absorb(h2.s.Loaded(h2.now))
	return h2
}

func TestReplayRestoresGroupsAndOffsets(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 2)
	h.commit("g", ids[0], gen, "t", 0, 100)
	h.commit("g", ids[1], gen, "t", 1, 200)
	h.commit("g", ids[1], gen, "t", 1, 201)
	h.commit("simple", "", -1, "u", 0, 7)
	h.commit("gone", "", -1, "u", 0, 8)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"gone"}
	h.step("c", del)

	h2 := replayed(t, h)
	for _, c := range []struct {
		group, topic string
		partition    int32
		want         int64
	}{{"g", "t", 0, 100}, {"g", "t", 1, 201}, {"simple", "u", 0, 7}, {"gone", "u", 0, -1}} {
		if got := h2.fetched(c.group, c.topic, c.partition); got != c.want {
			t.Errorf("%s %s/%d after replay: %d, want %d", c.group, c.topic, c.partition, got, c.want)
		}
	}
	// The members are back as they were: no rebalance is needed.
	d := h2.describe("g")
	if d.State != "Stable" || len(d.Members) != 2 || string(d.Members[0].MemberAssignment) != "assignment-of-"+ids[0] {
		t.Fatalf("group after replay: %+v", d)
	}
	for _, id := range ids {
		wantCode(t, "heartbeat after replay", h2.heartbeat("g", id, gen), nil)
	}
	// And generations keep counting up.
	tok := h2.join("c", "g", ids[0])
	h2.join("c", "g", ids[1])
	if got := h2.joinResp(tok).Generation; got != gen+1 {
		t.Fatalf("generation after replay and rebalance: %d, want %d", got, gen+1)
	}
}

func TestReplayedMembersExpireWithoutHeartbeats(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 1)
	h2 := replayed(t, h)
	h2.advance(10_000)
	wantCode(t, "heartbeat after the session ran out", h2.heartbeat("g", ids[0], gen), kerr.UnknownMemberID)
	if d := h2.describe("g"); d.State != "Empty" {
		t.Fatalf("group %s, want Empty", d.State)
	}
}

func TestReplayRejectsUnknownKeys(t *testing.T) {
	s := NewShard(testConfig())
	if err := s.Replay([]byte{0, 9, 1}, nil); err == nil {
		t.Fatal("unknown key version accepted")
	}
	if err := s.Replay([]byte{0, 1, 0xff}, []byte{1}); err == nil {
		t.Fatal("truncated offset key accepted")
	}
}

func TestPartitionForMatchesKafka(t *testing.T) {
	// Expected values follow Java's String.hashCode (UTF-16 code units) and
	// Kafka's Utils.abs, computed independently of this implementation.
	for _, c := range []struct {
		group string
		want  int32
	}{
		{"", 0},
		{"my-group", 12},
		{"console-consumer-12345", 6},
		{"polygenelubricants", 0}, // hashCode is Integer.MIN_VALUE
		{"gröup", 32},
	} {
		if got := PartitionFor(c.group, 50); got != c.want {
			t.Errorf("PartitionFor(%q, 50) = %d, want %d", c.group, got, c.want)
		}
	}
}
