package group

// SyncGroup v0-5. The leader's SyncGroup carries every member's
// assignment; the group is written with it, and once that is durable
// every waiting member gets its share. v3+ carries group.instance.id; v5+
// names the protocol type and protocol, which must match the group's.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Shard) syncGroup(nowMs int64, in Input, req *kmsg.SyncGroupRequest) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(e *kerr.Error) {
		resp.ErrorCode = e.Code
		s.respond(in.Token, resp)
	}
	if req.Group == "" {
		fail(kerr.InvalidGroupID)
		return
	}
	g := s.groups[req.Group]
	switch {
	case g == nil:
		fail(kerr.UnknownMemberID)
		return
	case g.state == Dead:
		fail(kerr.CoordinatorNotAvailable)
		return
	case g.fenced(req.InstanceID, req.MemberID):
		fail(kerr.FencedInstanceID)
		return
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		fail(kerr.UnknownMemberID)
		return
	case req.Generation != g.generation:
		fail(kerr.IllegalGeneration)
		return
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		fail(kerr.InconsistentGroupProtocol)
		return
	}
	switch g.state {
	case PreparingRebalance:
		fail(kerr.RebalanceInProgress)
	case Stable:
		m.deadline = nowMs + m.sessionTimeoutMs
		s.respond(in.Token, syncResponse(g, m, req))
	case CompletingRebalance:
		m.deadline = nowMs + m.sessionTimeoutMs
		if m.sync != nil {
			old := m.sync.req.ResponseKind().(*kmsg.SyncGroupResponse)
			old.ErrorCode = kerr.RebalanceInProgress.Code
			s.respond(m.sync.token, old)
		}
		m.sync = &pendingSync{token: in.Token, req: req}
		if m.id == g.leader && !g.storing {
			s.storeAssignment(g, req)
		}
	default: // Empty: the member is gone
		fail(kerr.UnknownMemberID)
	}
}

// storeAssignment writes the group with the leader's assignment; when it
// is durable the group is Stable and every waiting SyncGroup is answered.
func (s *Shard) storeAssignment(g *group, req *kmsg.SyncGroupRequest) {
	assign := make(map[string][]byte, len(g.members))
	for _, a := range req.GroupAssignment {
		if g.members[a.MemberID] != nil {
			assign[a.MemberID] = a.MemberAssignment
		}
	}
	g.storing = true
	gen := g.generation
	s.storeGroup(g, assign, func(nowMs int64, err error) {
		if s.groups[g.id] != g || g.generation != gen || g.state != CompletingRebalance {
			return // superseded: the rebalance that did so answered the waiters
		}
		g.storing = false
		if err != nil {
			g.each(func(m *member) {
				if m.sync != nil {
					resp := m.sync.req.ResponseKind().(*kmsg.SyncGroupResponse)
					resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
					s.respond(m.sync.token, resp)
					m.sync = nil
					m.deadline = nowMs + m.sessionTimeoutMs
				}
			})
			s.prepareRebalance(nowMs, g)
			return
		}
		g.setState(Stable, nowMs)
		g.each(func(m *member) {
			m.assignment = assign[m.id]
			if m.sync != nil {
				s.respond(m.sync.token, syncResponse(g, m, m.sync.req))
				m.sync = nil
				m.deadline = nowMs + m.sessionTimeoutMs
			}
		})
	})
}

func syncResponse(g *group, m *member, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	protocolType, protocol := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &protocolType, &protocol
	resp.MemberAssignment = m.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}
