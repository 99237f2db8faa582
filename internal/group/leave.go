package group

// LeaveGroup v0-5. v0-2 name one member and report its error at the top
// level; v3+ name a batch of members, each by member id or by
// group.instance.id (KIP-345), and report an error per member. v5 adds a
// reason, which is ignored.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Shard) leaveGroup(nowMs int64, in Input, req *kmsg.LeaveGroupRequest) {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	g := s.groups[req.Group]
	switch {
	case req.Group == "":
		resp.ErrorCode = kerr.InvalidGroupID.Code
	case g != nil && g.state == Dead:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	default:
		removed := false
		for _, l := range leaving {
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID = l.MemberID, l.InstanceID
			rm.ErrorCode = kerr.UnknownMemberID.Code
			if g != nil {
				var member bool
				rm.ErrorCode, member = s.leaveOne(g, l)
				removed = removed || member
			}
			resp.Members = append(resp.Members, rm)
		}
		if removed {
			s.membersChanged(nowMs, g)
		} else if g != nil {
			s.tryCompleteJoin(nowMs, g) // a pending member id may have gone
		}
		if req.Version < 3 && len(resp.Members) == 1 {
			resp.ErrorCode = resp.Members[0].ErrorCode
		}
	}
	s.respond(in.Token, resp)
}

// leaveOne removes one member (or pending member id) and returns its
// error code and whether a member, not just a pending id, left.
func (s *Shard) leaveOne(g *group, l kmsg.LeaveGroupRequestMember) (int16, bool) {
	if l.InstanceID != nil && *l.InstanceID != "" {
		id, ok := g.static[*l.InstanceID]
		switch {
		case !ok:
			return kerr.UnknownMemberID.Code, false
		case l.MemberID != "" && l.MemberID != id:
			return kerr.FencedInstanceID.Code, false
		}
		s.removeMember(g, g.members[id])
		return 0, true
	}
	if _, ok := g.pending[l.MemberID]; ok {
		delete(g.pending, l.MemberID)
		return 0, false
	}
	m := g.members[l.MemberID]
	if m == nil {
		return kerr.UnknownMemberID.Code, false
	}
	s.removeMember(g, m)
	return 0, true
}
