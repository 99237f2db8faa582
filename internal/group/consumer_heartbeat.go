package group

// ConsumerGroupHeartbeat v0-1 (KIP-848): join (member epoch 0), heartbeat
// and reconcile (the member's current epoch), leave (-1) and, for a static
// member, leave to come back (-2). v0 lets the coordinator choose a new
// member's id; v1 has the client choose it (an empty id is refused) and
// adds SubscribedTopicRegex, resolved here against the cluster's topics
// with RE2 syntax over whole topic names.
//
// The response carries the member's assignment when it changed or when
// the request was a full one (owned partitions given), so that a member
// that lost a response gets it again. Every answer waits until the state
// it shows is durable: what was written for this request, and everything
// written before it.

import (
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Shard) consumerGroupHeartbeat(nowMs int64, in Input, req *kmsg.ConsumerGroupHeartbeatRequest) {
	if in.Topics != nil {
		s.topics = in.Topics
	}
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	fail := func(e *kerr.Error, msg string) {
		resp.ErrorCode = e.Code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		s.afterAppends(func(int64) { s.respond(in.Token, resp) })
	}
	if e, msg := s.validateConsumerHeartbeat(req); e != nil {
		fail(e, msg)
		return
	}
	g := s.groups[req.Group]
	switch {
	case g != nil && g.state == Dead:
		fail(kerr.CoordinatorNotAvailable, "")
		return
	case g != nil && g.cg == nil && (len(g.members) > 0 || len(g.pending) > 0 || g.state != Empty):
		fail(kerr.GroupIDNotFound, fmt.Sprintf("group %s is a classic group with members", req.Group))
		return
	case (g == nil || g.cg == nil) && req.MemberEpoch != 0:
		// Only a join creates or converts a group.
		fail(kerr.UnknownMemberID, "")
		return
	}
	var recs []Record
	if g == nil {
		g = newGroup(req.Group, nowMs)
		s.groups[req.Group] = g
	}
	if g.cg == nil {
		// A new group, or an empty classic one converting (KIP-848):
		// its offsets stay, its classic record goes.
		if g.generation > 0 || g.protocolType != "" {
			recs = append(recs, Record{Key: groupKey(g.id)})
		}
		g.cg = newConsumerGroup()
		g.protocolType, g.protocol, g.generation, g.leader = "", "", 0, ""
		g.setState(Empty, nowMs)
	}
	cg := g.cg

	if req.MemberEpoch < 0 {
		s.consumerLeave(nowMs, in, g, req, recs)
		return
	}
	// A refused heartbeat may still have changed the group (converted
	// it, or dropped a member rejoining at epoch 0): that is stored, and
	// the refusal answered after it.
	failStored := func(e *kerr.Error, msg string) {
		s.storeConsumerGroup(g, recs, nil)
		fail(e, msg)
	}
	m, changed, e, msg := s.consumerMember(nowMs, in, g, req)
	if e != nil {
		if changed {
			s.refreshTarget(cg, true)
		}
		failStored(e, msg)
		return
	}
	joined := req.MemberEpoch == 0
	if req.InstanceID != nil && *req.InstanceID != m.instanceID {
		failStored(kerr.UnknownMemberID, "the member's instance id differs")
		return
	}
	owned := s.ownedPartitions(req.Topics)
	if !joined && req.MemberEpoch != m.epoch {
		lostResponse := req.MemberEpoch == m.prevEpoch && owned != nil && owned.subsetOf(m.assigned)
		if !lostResponse {
			failStored(kerr.FencedMemberEpoch, fmt.Sprintf("member epoch %d is not the current %d", req.MemberEpoch, m.epoch))
			return
		}
	}

	// The member's subscription and settings.
	if req.SubscribedTopicNames != nil {
		names := slices.Clone(req.SubscribedTopicNames)
		slices.Sort(names)
		names = slices.Compact(names)
		if !slices.Equal(names, m.subscribedNames) {
			m.subscribedNames, changed = names, true
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != m.regex {
		m.regex, changed = *req.SubscribedTopicRegex, true
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.assignor {
		m.assignor, changed = *req.ServerAssignor, true
	}
	if req.RebalanceTimeoutMillis > 0 {
		m.rebalanceTimeoutMs = int64(req.RebalanceTimeoutMillis)
	}
	if req.RackID != nil {
		m.rackID = *req.RackID
	}
	m.clientID, m.clientHost = in.ClientID, in.ClientHost
	m.deadline = nowMs + s.cfg.ConsumerSessionTimeoutMs
	s.refreshTarget(cg, changed)

	prev := m.assigned
	s.reconcileMember(nowMs, cg, m, owned)

	resp.MemberID = &m.id
	resp.MemberEpoch = m.epoch
	resp.HeartbeatIntervalMillis = int32(s.cfg.ConsumerHeartbeatIntervalMs)
	if joined || req.Topics != nil || !prev.equal(m.assigned) {
		resp.Assignment = s.assignmentMessage(m.assigned)
	}
	s.storeConsumerGroup(g, recs, func(_ int64, err error) {
		if err != nil {
			*resp = *req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		}
		s.respond(in.Token, resp)
	})
}

// validateConsumerHeartbeat checks what a heartbeat must carry (KIP-848).
func (s *Shard) validateConsumerHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) (*kerr.Error, string) {
	switch {
	case req.Group == "":
		return kerr.InvalidRequest, "the group id is empty"
	case req.MemberID == "" && (req.Version >= 1 || req.MemberEpoch != 0):
		return kerr.InvalidRequest, "the member id is empty"
	case req.MemberEpoch < -2:
		return kerr.InvalidRequest, fmt.Sprintf("member epoch %d is invalid", req.MemberEpoch)
	case req.MemberEpoch == -2 && (req.InstanceID == nil || *req.InstanceID == ""):
		return kerr.InvalidRequest, "only a static member leaves with epoch -2"
	case req.MemberEpoch == 0 && req.RebalanceTimeoutMillis <= 0:
		return kerr.InvalidRequest, "a joining member must give its rebalance timeout"
	case req.MemberEpoch == 0 && req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
		return kerr.InvalidRequest, "a joining member must give its subscription"
	case req.MemberEpoch == 0 && len(req.Topics) > 0:
		return kerr.InvalidRequest, "a joining member owns no partitions"
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		if len(*req.SubscribedTopicRegex) > maxRegexBytes {
			return kerr.InvalidRegularExpression, fmt.Sprintf("the regex is longer than %d bytes", maxRegexBytes)
		}
		if _, err := s.regex(*req.SubscribedTopicRegex); err != nil {
			return kerr.InvalidRegularExpression, err.Error()
		}
	}
	if req.ServerAssignor != nil && !slices.Contains(s.cfg.ConsumerAssignors, *req.ServerAssignor) {
		return kerr.UnsupportedAssignor, fmt.Sprintf("assignor %q is not one of %v", *req.ServerAssignor, s.cfg.ConsumerAssignors)
	}
	return nil, ""
}

// consumerMember finds or adds the member a non-leaving heartbeat is for;
// changed reports a change of membership, which needs a new group epoch.
func (s *Shard) consumerMember(nowMs int64, in Input, g *group, req *kmsg.ConsumerGroupHeartbeatRequest) (m *consumerMember, changed bool, e *kerr.Error, msg string) {
	cg := g.cg
	id := req.MemberID
	if id == "" {
		id = in.ClientID + "-" + s.cfg.NewID()
	}
	if req.MemberEpoch != 0 {
		m := cg.members[id]
		if m == nil {
			return nil, false, kerr.UnknownMemberID, ""
		}
		return m, false, nil, ""
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	var inherit *consumerMember
	if instance != "" {
		if oldID, ok := cg.static[instance]; ok && oldID != id {
			old := cg.members[oldID]
			if !old.left {
				return nil, false, kerr.UnreleasedInstanceID, fmt.Sprintf("instance %s is held by member %s", instance, oldID)
			}
			inherit = old
		}
	}
	if old := cg.members[id]; old != nil {
		// Rejoining with epoch 0: the member gave up what it had.
		cg.removeMember(old)
		changed = true
	}
	if inherit == nil && len(cg.members) >= s.cfg.MaxGroupSize {
		return nil, changed, kerr.GroupMaxSizeReached, ""
	}
	m = &consumerMember{id: id, instanceID: instance, rebalanceTimeoutMs: int64(req.RebalanceTimeoutMillis),
		memberAssignment: memberAssignment{assigned: assignment{}, revoking: assignment{}}}
	if inherit != nil {
		// The static member's new incarnation takes its place: its
		// epoch, its assignment and its target (KIP-848), with no
		// rebalance unless its subscription changed.
		m.memberAssignment = inherit.memberAssignment
		m.subscribedNames, m.regex, m.assignor = inherit.subscribedNames, inherit.regex, inherit.assignor
		target := cg.target[inherit.id]
		cg.removeMember(inherit)
		cg.target[id] = target
	} else {
		changed = true
	}
	cg.members[id] = m
	if instance != "" {
		cg.static[instance] = id
	}
	return m, changed, nil, ""
}

// consumerLeave handles epoch -1 (leave) and -2 (a static member leaving
// to come back under the same instance id).
func (s *Shard) consumerLeave(nowMs int64, in Input, g *group, req *kmsg.ConsumerGroupHeartbeatRequest, recs []Record) {
	cg := g.cg
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	resp.MemberID = &req.MemberID
	resp.MemberEpoch = req.MemberEpoch
	m := cg.members[req.MemberID]
	if m == nil && req.InstanceID != nil {
		m = cg.members[cg.static[*req.InstanceID]]
	}
	switch {
	case m == nil:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	case req.MemberEpoch == -2:
		m.left = true
	default:
		s.dropConsumerMember(nowMs, g, m)
	}
	s.storeConsumerGroup(g, recs, func(int64, error) { s.respond(in.Token, resp) })
}

// dropConsumerMember removes a member: its partitions are free at once,
// for the others to take at the next epoch.
func (s *Shard) dropConsumerMember(nowMs int64, g *group, m *consumerMember) {
	cg := g.cg
	cg.removeMember(m)
	if len(cg.members) == 0 {
		g.setState(Empty, nowMs) // offsets expire counting from now
	}
	s.refreshTarget(cg, true)
}

// refreshTarget bumps the group epoch, once, when bump says the
// membership or a subscription changed or the subscribed topics did, and
// computes the target assignment when it is behind the group epoch.
// Without the cluster's topics (a shard just loaded, before any heartbeat)
// the target waits for them.
func (s *Shard) refreshTarget(cg *consumerGroup, bump bool) {
	if s.topics == nil {
		if bump {
			cg.epoch++
		}
		return
	}
	subs := map[string][]string{}
	parts := map[string]int32{}
	for id, m := range cg.members {
		re, _ := s.regex(m.regex)
		subs[id] = m.subscription(s.topics, re)
		for _, t := range subs[id] {
			parts[t] = s.topics[t].Partitions
		}
	}
	if bump || !maps.Equal(parts, cg.topics) {
		cg.epoch++
	}
	if cg.assignmentEpoch >= cg.epoch {
		return
	}
	cg.assignor = chooseAssignor(s.cfg.ConsumerAssignors, cg.members)
	cg.target = assign(cg.assignor, assignInput{subscriptions: subs, partitions: parts, previous: cg.target})
	cg.topics = parts
	cg.assignmentEpoch = cg.epoch
}

// reconcileMember takes one reconciliation step for m.
func (s *Shard) reconcileMember(nowMs int64, cg *consumerGroup, m *consumerMember, owned assignment) {
	target := cg.target[m.id]
	if target == nil {
		target = assignment{}
	}
	wasRevoking := m.state == memberUnrevokedPartitions
	m.memberAssignment = reconcile(m.memberAssignment, target, cg.assignmentEpoch, owned, cg.heldByOthers(m.id))
	switch {
	case m.state != memberUnrevokedPartitions:
		m.revokeDeadline = 0
	case !wasRevoking:
		m.revokeDeadline = nowMs + m.rebalanceTimeoutMs
	}
}

// ownedPartitions reads a heartbeat's owned partitions by topic name;
// nil when the heartbeat did not say. Topics not known are left out.
func (s *Shard) ownedPartitions(topics []kmsg.ConsumerGroupHeartbeatRequestTopic) assignment {
	if topics == nil {
		return nil
	}
	names := map[[16]byte]string{}
	for name, t := range s.topics {
		names[t.ID] = name
	}
	owned := assignment{}
	for _, t := range topics {
		if name, ok := names[t.TopicID]; ok {
			for _, p := range t.Partitions {
				owned.add(name, p)
			}
		}
	}
	return owned
}

// assignmentMessage names a's topics by id, leaving out topics that no
// longer exist.
func (s *Shard) assignmentMessage(a assignment) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	out := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	out.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for _, name := range slices.Sorted(maps.Keys(a)) {
		t, ok := s.topics[name]
		if !ok || len(a[name]) == 0 {
			continue
		}
		at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		at.TopicID, at.Partitions = t.ID, slices.Clone(a[name])
		out.Topics = append(out.Topics, at)
	}
	return &out
}

// regex compiles (and caches) a subscription regex; "" is no regex.
func (s *Shard) regex(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	if re, ok := s.regexes[expr]; ok {
		return re, nil
	}
	re, err := compileRegex(expr)
	if err != nil {
		return nil, err
	}
	if len(s.regexes) >= maxCachedRegexes {
		clear(s.regexes)
	}
	s.regexes[expr] = re
	return re, nil
}

// maxCachedRegexes bounds the compiled-regex cache.
const maxCachedRegexes = 1024

// expireConsumerMembers removes the members of g whose session ended or
// who did not revoke partitions within their rebalance timeout.
func (s *Shard) expireConsumerMembers(nowMs int64, g *group) {
	cg := g.cg
	removed := false
	for _, id := range cg.memberIDs() {
		m := cg.members[id]
		if nowMs >= m.deadline || (m.revokeDeadline > 0 && nowMs >= m.revokeDeadline) {
			s.dropConsumerMember(nowMs, g, m)
			removed = true
		}
	}
	if removed {
		s.storeConsumerGroup(g, nil, nil)
	}
}
