package group

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is a group's place in the classic rebalance protocol, named as
// DescribeGroups and ListGroups report it.
type State int8

// Group states.
const (
	Empty               State = iota // no members: offsets only
	PreparingRebalance               // waiting for the members to (re)join
	CompletingRebalance              // joined; waiting for the leader's assignment
	Stable                           // assignment handed out
	Dead                             // being deleted
)

var stateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

// String is the state as Kafka names it.
func (s State) String() string { return stateNames[s] }

// protocol is one assignment protocol a member supports, with its
// subscription metadata.
type protocol struct {
	name     string
	metadata []byte
}

// member is one member of a group.
type member struct {
	id, instanceID       string // instanceID "" for a dynamic member
	clientID, clientHost string
	sessionTimeoutMs     int64
	rebalanceTimeoutMs   int64
	protocolType         string
	protocols            []protocol // in the member's order of preference
	assignment           []byte

	deadline int64        // session expiry, while not joining or syncing
	join     *pendingJoin // a JoinGroup waiting for the rebalance
	sync     *pendingSync // a SyncGroup waiting for the assignment
}

type pendingJoin struct {
	token uint64
	req   *kmsg.JoinGroupRequest
}

type pendingSync struct {
	token uint64
	req   *kmsg.SyncGroupRequest
}

// metadataFor returns the member's subscription for protocol name.
func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

func (m *member) supports(name string) bool {
	for _, p := range m.protocols {
		if p.name == name {
			return true
		}
	}
	return false
}

// keptAlive reports whether the session timeout is suspended: a member
// whose JoinGroup or SyncGroup is waiting is bounded by the rebalance
// deadlines instead.
func (m *member) keptAlive() bool { return m.join != nil || m.sync != nil }

type topicPartition struct {
	topic     string
	partition int32
}

// offset is one committed offset.
type offset struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitMs    int64
	// seq is the position of the offset's record in the partition, in
	// the order the shard wrote or replayed its records: of two commits
	// of the same partition the later-written wins, as compaction keeps
	// it, whatever order their outcomes arrive in.
	seq uint64
}

// dropOffset applies a tombstone of tp written at seq: the committed
// offset and the pending transactional ones written before it go (as
// compaction would remove them), those written after it stay.
func (g *group) dropOffset(tp topicPartition, seq uint64) {
	if cur, ok := g.offsets[tp]; ok && cur.seq < seq {
		delete(g.offsets, tp)
	}
	for pid, pending := range g.txnOffsets {
		if o, ok := pending[tp]; ok && o.seq < seq {
			delete(pending, tp)
			if len(pending) == 0 {
				delete(g.txnOffsets, pid)
			}
		}
	}
}

// hasPending reports whether a transaction holds a pending offset of tp.
func (g *group) hasPending(tp topicPartition) bool {
	for _, pending := range g.txnOffsets {
		if _, ok := pending[tp]; ok {
			return true
		}
	}
	return false
}

// setOffset makes o the group's offset of tp unless a later-written
// commit holds it already.
func (g *group) setOffset(tp topicPartition, o offset) {
	if cur, ok := g.offsets[tp]; ok && cur.seq > o.seq {
		return
	}
	g.offsets[tp] = o
}

// group is one consumer group (or a "simple" group that only stores
// offsets: no members, no protocol type).
type group struct {
	id           string
	state        State
	stateSinceMs int64
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	order        []string          // member ids in join order: deterministic iteration
	static       map[string]string // group.instance.id -> member id
	pending      map[string]int64  // ids handed out with MEMBER_ID_REQUIRED -> expiry
	offsets      map[topicPartition]offset
	inflight     int // offset commits appended and not yet durable
	// txnOffsets are offsets written by TxnOffsetCommit whose transaction
	// has not ended, by producer id.
	txnOffsets map[int64]map[topicPartition]offset

	joinDeadline int64 // PreparingRebalance: the rebalance timeout
	delayUntil   int64 // PreparingRebalance of an empty group: the initial delay
	delayLimit   int64 // how far new members may extend the initial delay
	syncDeadline int64 // CompletingRebalance: when the leader's SyncGroup is due
	storing      bool  // CompletingRebalance: the leader's assignment is being written

	// cg is set when the group uses the consumer protocol (KIP-848);
	// the classic fields above then stay empty. cgStored is its record
	// as last written, so unchanged state is not written again.
	cg       *consumerGroup
	cgStored []byte
}

// hasMembers reports whether the group has members of either protocol.
func (g *group) hasMembers() bool {
	return len(g.members) > 0 || len(g.pending) > 0 || (g.cg != nil && len(g.cg.members) > 0)
}

func newGroup(id string, nowMs int64) *group {
	return &group{
		id: id, state: Empty, stateSinceMs: nowMs,
		members: map[string]*member{},
		static:  map[string]string{},
		pending: map[string]int64{},
		offsets: map[topicPartition]offset{},
	}
}

func (g *group) setState(s State, nowMs int64) {
	g.state = s
	g.stateSinceMs = nowMs
}

// each calls fn for every member in join order; fn may not add members.
func (g *group) each(fn func(m *member)) {
	for _, id := range g.order {
		if m := g.members[id]; m != nil {
			fn(m)
		}
	}
}

func (g *group) size() int { return len(g.members) + len(g.pending) }

func (g *group) addMember(m *member) {
	g.members[m.id] = m
	g.order = append(g.order, m.id)
	if m.instanceID != "" {
		g.static[m.instanceID] = m.id
	}
	if g.leader == "" {
		g.leader = m.id
	}
}

// dropMember takes m out of the group's maps; callers answer its waiting
// requests first.
func (g *group) dropMember(m *member) {
	delete(g.members, m.id)
	for i, id := range g.order {
		if id == m.id {
			g.order = append(g.order[:i:i], g.order[i+1:]...)
			break
		}
	}
	if m.instanceID != "" && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[0]
		}
	}
}

// replaceMember puts m in old's place (a static member rejoining under a
// new member id), keeping its position, its assignment and its leadership.
func (g *group) replaceMember(old, m *member) {
	delete(g.members, old.id)
	g.members[m.id] = m
	for i, id := range g.order {
		if id == old.id {
			g.order[i] = m.id
		}
	}
	g.static[m.instanceID] = m.id
	if g.leader == old.id {
		g.leader = m.id
	}
}

// fenced is the KIP-345 check: a request naming a static instance whose
// current member id is another is from a fenced zombie.
func (g *group) fenced(instanceID *string, memberID string) bool {
	if instanceID == nil || *instanceID == "" {
		return false
	}
	id, ok := g.static[*instanceID]
	return ok && id != memberID
}

// accepts reports whether a member with these protocols may join: the
// first member sets the protocol type; later ones must share it and
// support at least one protocol every member supports.
func (g *group) accepts(protocolType string, protocols []protocol) bool {
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		all := true
		g.each(func(m *member) { all = all && m.supports(p.name) })
		if all {
			return true
		}
	}
	return false
}

// selectProtocol picks the protocol every member supports that most
// members prefer; ties go to the earlier in the first member's list.
func (g *group) selectProtocol() string {
	first := g.members[g.order[0]]
	var candidates []string
	for _, p := range first.protocols {
		all := true
		g.each(func(m *member) { all = all && m.supports(p.name) })
		if all {
			candidates = append(candidates, p.name)
		}
	}
	votes := map[string]int{}
	g.each(func(m *member) {
		for _, p := range m.protocols {
			if contains(candidates, p.name) {
				votes[p.name]++
				return
			}
		}
	})
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// maxRebalanceTimeoutMs is how long a rebalance waits for the members.
func (g *group) maxRebalanceTimeoutMs() int64 {
	var t int64
	g.each(func(m *member) { t = max(t, m.rebalanceTimeoutMs) })
	return t
}

// allJoined reports whether every member's JoinGroup is waiting and no
// member id handed out with MEMBER_ID_REQUIRED is still to come back.
func (g *group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return true
}

// sameSubscription reports whether a rejoining member asks for what it
// already has: the same protocols in the same order with the same
// metadata. Anything else needs a rebalance.
func sameSubscription(m *member, protocols []protocol) bool {
	if len(m.protocols) != len(protocols) {
		return false
	}
	for i, p := range protocols {
		if m.protocols[i].name != p.name || !bytes.Equal(m.protocols[i].metadata, p.metadata) {
			return false
		}
	}
	return true
}

// pendingTxnOffset reports whether a transactional offset commit for tp is
// written but not yet committed or aborted, which makes OffsetFetch with
// require_stable answer UNSTABLE_OFFSET_COMMIT (KIP-447).
func (g *group) pendingTxnOffset(tp topicPartition) bool {
	for _, offs := range g.txnOffsets {
		if _, ok := offs[tp]; ok {
			return true
		}
	}
	return false
}
