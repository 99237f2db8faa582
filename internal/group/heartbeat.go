package group

// Heartbeat v0-4 (v3+ carries group.instance.id), and the timers that
// expire members: session timeouts, the rebalance timeout of members that
// do not rejoin, and the leader's SyncGroup deadline.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Shard) heartbeat(nowMs int64, in Input, req *kmsg.HeartbeatRequest) {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = s.heartbeatCode(nowMs, req)
	s.respond(in.Token, resp)
}

func (s *Shard) heartbeatCode(nowMs int64, req *kmsg.HeartbeatRequest) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	g := s.groups[req.Group]
	switch {
	case g == nil:
		return kerr.UnknownMemberID.Code
	case g.state == Dead:
		return kerr.CoordinatorNotAvailable.Code
	case g.fenced(req.InstanceID, req.MemberID):
		return kerr.FencedInstanceID.Code
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case req.Generation != g.generation:
		return kerr.IllegalGeneration.Code
	}
	switch g.state {
	case PreparingRebalance:
		m.deadline = nowMs + m.sessionTimeoutMs
		return kerr.RebalanceInProgress.Code
	case CompletingRebalance, Stable:
		// A member may heartbeat between its JoinGroup and SyncGroup.
		m.deadline = nowMs + m.sessionTimeoutMs
		return 0
	}
	return kerr.UnknownMemberID.Code
}

// expireMembers applies g's timers at nowMs.
func (s *Shard) expireMembers(nowMs int64, g *group) {
	for id, exp := range g.pending {
		if nowMs >= exp {
			delete(g.pending, id)
		}
	}
	var gone []*member
	g.each(func(m *member) {
		if !m.keptAlive() && nowMs >= m.deadline {
			gone = append(gone, m)
		}
	})
	if g.state == CompletingRebalance && !g.storing && nowMs >= g.syncDeadline {
		// The leader's assignment did not come: members that have not
		// asked for theirs (the leader among them) are presumed gone; the
		// rest rejoin.
		g.each(func(m *member) {
			if m.sync == nil && !containsMember(gone, m) {
				gone = append(gone, m)
			}
		})
	}
	for _, m := range gone {
		s.removeMember(g, m)
	}
	if len(gone) > 0 {
		s.membersChanged(nowMs, g)
	}
	s.tryCompleteJoin(nowMs, g)
}

func containsMember(ms []*member, m *member) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}
