package group

// JoinGroup v0-9 and the rebalance it drives.
//
// v0 has no rebalance timeout (the session timeout serves). v4+ gets
// MEMBER_ID_REQUIRED for a first join without a member id (KIP-394): the
// client rejoins with the id it was given, so a client that never comes
// back leaves only a pending id that expires with its session timeout.
// v5+ carries group.instance.id (static membership, KIP-345). v7+ returns
// the protocol type, v9+ skip_assignment for a static leader that rejoined
// a stable group.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Shard) joinGroup(nowMs int64, in Input, req *kmsg.JoinGroupRequest) {
	fail := func(e *kerr.Error) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.MemberID = e.Code, req.MemberID
		s.respond(in.Token, resp)
	}
	switch {
	case req.Group == "":
		fail(kerr.InvalidGroupID)
		return
	case req.SessionTimeoutMillis < s.cfg.MinSessionTimeoutMs || req.SessionTimeoutMillis > s.cfg.MaxSessionTimeoutMs:
		fail(kerr.InvalidSessionTimeout)
		return
	case req.ProtocolType == "" || len(req.Protocols) == 0:
		fail(kerr.InconsistentGroupProtocol)
		return
	}
	protocols := make([]protocol, len(req.Protocols))
	for i, p := range req.Protocols {
		protocols[i] = protocol{name: p.Name, metadata: p.Metadata}
	}
	g := s.groups[req.Group]
	if g == nil {
		if req.MemberID != "" {
			fail(kerr.UnknownMemberID)
			return
		}
		g = newGroup(req.Group, nowMs)
		s.groups[req.Group] = g
	}
	if g.state == Dead {
		fail(kerr.CoordinatorNotAvailable)
		return
	}
	if g.cg != nil {
		if len(g.cg.members) > 0 {
			// A classic member cannot join a consumer group with members.
			fail(kerr.InconsistentGroupProtocol)
			return
		}
		// An empty consumer group converts to the classic protocol
		// (KIP-848), keeping its offsets.
		g.cg, g.cgStored = nil, nil
		s.append([]Record{{Key: consumerGroupKey(g.id)}}, func(int64, error) {})
	}
	if !g.accepts(req.ProtocolType, protocols) {
		fail(kerr.InconsistentGroupProtocol)
		return
	}
	instanceID := ""
	if req.InstanceID != nil {
		instanceID = *req.InstanceID
	}

	if req.MemberID == "" {
		if g.size() >= s.cfg.MaxGroupSize {
			fail(kerr.GroupMaxSizeReached)
			return
		}
		prefix := in.ClientID
		if instanceID != "" {
			prefix = instanceID
		}
		id := prefix + "-" + s.cfg.NewID()
		switch {
		case instanceID != "":
			s.joinStatic(nowMs, in, g, req, protocols, id)
		case req.Version >= 4:
			g.pending[id] = nowMs + int64(req.SessionTimeoutMillis)
			resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode, resp.MemberID = kerr.MemberIDRequired.Code, id
			s.respond(in.Token, resp)
		default:
			s.addMember(nowMs, in, g, req, protocols, id)
		}
		return
	}
	if _, ok := g.pending[req.MemberID]; ok {
		delete(g.pending, req.MemberID)
		s.addMember(nowMs, in, g, req, protocols, req.MemberID)
		return
	}
	if g.fenced(req.InstanceID, req.MemberID) {
		fail(kerr.FencedInstanceID)
		return
	}
	m := g.members[req.MemberID]
	if m == nil {
		fail(kerr.UnknownMemberID)
		return
	}
	switch g.state {
	case PreparingRebalance:
		s.updateMember(m, req, protocols)
		s.awaitJoin(m, in.Token, req)
		s.tryCompleteJoin(nowMs, g)
	case CompletingRebalance, Stable:
		// A follower asking for what it has (it missed the response, or
		// rejoined on a hunch) gets the current generation again; a
		// leader or a changed subscription starts a rebalance.
		if sameSubscription(m, protocols) && (g.state == CompletingRebalance || m.id != g.leader) {
			s.respond(in.Token, s.joinResponse(g, m, req, false))
			return
		}
		s.updateMember(m, req, protocols)
		s.awaitJoin(m, in.Token, req)
		s.prepareRebalance(nowMs, g)
	default:
		fail(kerr.UnknownMemberID)
	}
}

func rebalanceTimeoutMs(req *kmsg.JoinGroupRequest) int64 {
	if req.Version == 0 || req.RebalanceTimeoutMillis <= 0 {
		return int64(req.SessionTimeoutMillis)
	}
	return int64(req.RebalanceTimeoutMillis)
}

func (s *Shard) updateMember(m *member, req *kmsg.JoinGroupRequest, protocols []protocol) {
	m.protocolType = req.ProtocolType
	m.protocols = protocols
	m.sessionTimeoutMs = int64(req.SessionTimeoutMillis)
	m.rebalanceTimeoutMs = rebalanceTimeoutMs(req)
}

// awaitJoin parks m's JoinGroup until the rebalance completes. A JoinGroup
// still parked from before is from a connection the client gave up on.
func (s *Shard) awaitJoin(m *member, token uint64, req *kmsg.JoinGroupRequest) {
	if m.join != nil {
		resp := m.join.req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.MemberID = kerr.RebalanceInProgress.Code, m.id
		s.respond(m.join.token, resp)
	}
	m.join = &pendingJoin{token: token, req: req}
}

// addMember adds a new member whose JoinGroup waits for the rebalance it
// starts (or joins).
func (s *Shard) addMember(nowMs int64, in Input, g *group, req *kmsg.JoinGroupRequest, protocols []protocol, id string) {
	m := &member{id: id, clientID: in.ClientID, clientHost: in.ClientHost}
	if req.InstanceID != nil {
		m.instanceID = *req.InstanceID
	}
	s.updateMember(m, req, protocols)
	m.deadline = nowMs + m.sessionTimeoutMs
	g.addMember(m)
	g.protocolType = req.ProtocolType
	s.awaitJoin(m, in.Token, req)
	if g.state == PreparingRebalance && g.delayUntil > 0 {
		// The first rebalance of an empty group waits while members keep
		// arriving, within the rebalance timeout.
		g.delayUntil = min(nowMs+s.cfg.InitialRebalanceDelayMs, g.delayLimit)
	}
	if g.state != PreparingRebalance {
		s.prepareRebalance(nowMs, g)
	}
	s.tryCompleteJoin(nowMs, g)
}

// joinStatic handles a static member's join without a member id: a new
// instance joins like a new member; a known one takes over its old member
// id's place, fencing whatever still uses that id.
func (s *Shard) joinStatic(nowMs int64, in Input, g *group, req *kmsg.JoinGroupRequest, protocols []protocol, id string) {
	oldID, known := g.static[*req.InstanceID]
	if !known {
		s.addMember(nowMs, in, g, req, protocols, id)
		return
	}
	old := g.members[oldID]
	s.answerFenced(old)
	m := &member{id: id, instanceID: old.instanceID, clientID: in.ClientID, clientHost: in.ClientHost, assignment: old.assignment}
	s.updateMember(m, req, protocols)
	m.deadline = nowMs + m.sessionTimeoutMs
	g.replaceMember(old, m)
	switch g.state {
	case Stable:
		if !(m.supports(g.protocol) && string(m.metadataFor(g.protocol)) == string(old.metadataFor(g.protocol))) {
			s.awaitJoin(m, in.Token, req)
			s.prepareRebalance(nowMs, g)
			return
		}
		// Same subscription: no rebalance. The new member id is stored
		// before it is handed out, so that after a restart the old id
		// stays fenced.
		resp := s.joinResponse(g, m, req, true)
		s.storeGroup(g, nil, func(_ int64, err error) {
			if err != nil {
				resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			}
			s.respond(in.Token, resp)
		})
	case CompletingRebalance:
		s.awaitJoin(m, in.Token, req)
		s.prepareRebalance(nowMs, g)
	default: // PreparingRebalance
		s.awaitJoin(m, in.Token, req)
		s.tryCompleteJoin(nowMs, g)
	}
}

// answerFenced fails the waiting requests of a static member that was
// replaced.
func (s *Shard) answerFenced(m *member) {
	if m.join != nil {
		resp := m.join.req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.MemberID = kerr.FencedInstanceID.Code, m.id
		s.respond(m.join.token, resp)
		m.join = nil
	}
	if m.sync != nil {
		resp := m.sync.req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.FencedInstanceID.Code
		s.respond(m.sync.token, resp)
		m.sync = nil
	}
}

// prepareRebalance moves a group to PreparingRebalance: every member must
// rejoin within the rebalance timeout. SyncGroups waiting on an assignment
// that will not come are told to rejoin.
func (s *Shard) prepareRebalance(nowMs int64, g *group) {
	if g.state == CompletingRebalance {
		g.each(func(m *member) {
			m.assignment = nil
			if m.sync != nil {
				resp := m.sync.req.ResponseKind().(*kmsg.SyncGroupResponse)
				resp.ErrorCode = kerr.RebalanceInProgress.Code
				s.respond(m.sync.token, resp)
				m.sync = nil
				m.deadline = nowMs + m.sessionTimeoutMs // its session resumes now
			}
		})
		g.storing = false
	}
	initial := g.state == Empty
	g.setState(PreparingRebalance, nowMs)
	g.joinDeadline = nowMs + g.maxRebalanceTimeoutMs()
	g.delayUntil, g.delayLimit = 0, 0
	if initial {
		g.delayLimit = g.joinDeadline
		g.delayUntil = min(nowMs+s.cfg.InitialRebalanceDelayMs, g.delayLimit)
	}
	s.tryCompleteJoin(nowMs, g)
}

// tryCompleteJoin completes the rebalance once every member has joined (and
// any initial delay is over) or the rebalance timeout has passed.
func (s *Shard) tryCompleteJoin(nowMs int64, g *group) {
	if g.state != PreparingRebalance {
		return
	}
	if g.delayUntil > 0 {
		if nowMs < g.delayUntil {
			return
		}
		g.delayUntil = 0
	}
	if !g.allJoined() && nowMs < g.joinDeadline {
		return
	}
	s.completeJoin(nowMs, g)
}

// completeJoin starts a new generation with the members that joined.
func (s *Shard) completeJoin(nowMs int64, g *group) {
	var gone []*member
	g.each(func(m *member) {
		if m.join == nil {
			gone = append(gone, m)
		}
	})
	for _, m := range gone {
		s.removeMember(g, m)
	}
	clear(g.pending)
	g.generation++
	g.joinDeadline = 0
	if len(g.members) == 0 {
		g.protocol, g.leader = "", ""
		g.setState(Empty, nowMs)
		s.storeGroup(g, nil, nil)
		return
	}
	g.protocol = g.selectProtocol()
	g.setState(CompletingRebalance, nowMs)
	g.syncDeadline = nowMs + g.maxRebalanceTimeoutMs()
	g.storing = false
	g.each(func(m *member) {
		s.respond(m.join.token, s.joinResponse(g, m, m.join.req, false))
		m.join = nil
		m.deadline = nowMs + m.sessionTimeoutMs
	})
}

// joinResponse is the JoinGroup answer for m in the current generation;
// the leader gets every member's subscription.
func (s *Shard) joinResponse(g *group, m *member, req *kmsg.JoinGroupRequest, skipAssignment bool) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = g.generation
	protocolType, protocol := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &protocolType, &protocol
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader {
		resp.SkipAssignment = skipAssignment
		g.each(func(o *member) {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID = o.id
			if o.instanceID != "" {
				inst := o.instanceID
				rm.InstanceID = &inst
			}
			rm.ProtocolMetadata = o.metadataFor(g.protocol)
			resp.Members = append(resp.Members, rm)
		})
	}
	return resp
}

// removeMember takes a member out of the group, answering its waiting
// requests with UNKNOWN_MEMBER_ID. The caller decides whether to rebalance.
func (s *Shard) removeMember(g *group, m *member) {
	if m.join != nil {
		resp := m.join.req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.MemberID = kerr.UnknownMemberID.Code, m.id
		s.respond(m.join.token, resp)
		m.join = nil
	}
	if m.sync != nil {
		resp := m.sync.req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		s.respond(m.sync.token, resp)
		m.sync = nil
	}
	g.dropMember(m)
}

// membersChanged reacts to members leaving or expiring: a settled group
// rebalances; a rebalancing one may now be complete.
func (s *Shard) membersChanged(nowMs int64, g *group) {
	switch g.state {
	case Stable, CompletingRebalance:
		s.prepareRebalance(nowMs, g)
	case PreparingRebalance:
		s.tryCompleteJoin(nowMs, g)
	}
}
