package controller

// Broker-only nodes: a node whose id is not among the voters takes part
// in the metadata quorum as a Raft learner, a member that receives and
// applies the log like a voter but neither votes nor campaigns, so it can
// never become the controller and does not count towards a majority.
//
// It starts from the same initial snapshot as every voter (the voters as
// the configuration, an empty image), in which it is not a member. Until
// it hears from a leader it sends a voter, in turn, a proposal of one
// configuration change, "add me as a learner", whose context is its
// controller listener; a voter that follows forwards it to the leader as
// it does any proposal. Once committed, every member applies the change
// (the library's ApplyConfChange, on the driver) and learns the address
// (the transport sends there, and the image keeps it, so it survives
// restarts and snapshots). The leader then sends the learner the log, or
// a snapshot when the log it lacks was trimmed.
//
// Only that change is ever accepted: the voters are fixed, a node adds
// only itself, and a voter's id cannot be added as a learner.

import (
	"errors"
	"fmt"
	"net"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

const (
	// joinEveryTicks is the pause, in ticks, between two requests of a
	// broker-only node to be added.
	joinEveryTicks = 10
	// joinAcceptEvery bounds how often a voter accepts a join from a node
	// not yet a member.
	joinAcceptEvery = 100 * time.Millisecond
	// maxJoinContextBytes bounds the address a join carries.
	maxJoinContextBytes = 256
)

// joinWarnEvery is how many unanswered requests to join are logged once.
// Tests lower it.
var joinWarnEvery = 5

// joinMessage is node self's request, to voter to, to be added as a
// learner reachable at addr.
func joinMessage(self, to uint64, addr string) *pb.Message {
	cc := &pb.ConfChange{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: new(self), Context: []byte(addr)}
	data, err := proto.Marshal(cc)
	if err != nil {
		panic(err) // plain fields: cannot fail
	}
	return &pb.Message{Type: pb.MsgProp.Enum(), From: new(self), To: new(to),
		Entries: []*pb.Entry{{Type: pb.EntryConfChange.Enum(), Data: data}}}
}

// isJoin reports whether m is a proposal to add its sender as a learner;
// the error says why m carries a configuration change that may not be
// accepted.
func isJoin(m *pb.Message, voters map[uint64]bool) (bool, error) {
	if m.GetType() != pb.MsgProp {
		return false, nil
	}
	var cc *pb.ConfChange
	for _, e := range m.GetEntries() {
		switch e.GetType() {
		case pb.EntryNormal:
		case pb.EntryConfChange:
			if len(m.GetEntries()) != 1 {
				return false, errors.New("a configuration change must be proposed alone")
			}
			cc = &pb.ConfChange{}
			if err := proto.Unmarshal(e.GetData(), cc); err != nil {
				return false, fmt.Errorf("undecodable configuration change: %w", err)
			}
		default:
			return false, fmt.Errorf("configuration change of type %v: only adding a learner is supported", e.GetType())
		}
	}
	if cc == nil {
		return false, nil
	}
	if _, err := checkJoin(cc, m.GetFrom(), voters); err != nil {
		return false, err
	}
	return true, nil
}

// checkJoin checks that cc, proposed by from, adds from as a learner, and
// returns the learner's controller address.
func checkJoin(cc *pb.ConfChange, from uint64, voters map[uint64]bool) (string, error) {
	id, addr := cc.GetNodeId(), string(cc.GetContext())
	switch {
	case cc.GetType() != pb.ConfChangeAddLearnerNode:
		return "", fmt.Errorf("configuration change %v refused: the voters are fixed; only a broker-only node adding itself as a learner is supported", cc.GetType())
	case id == 0 || id != from:
		return "", fmt.Errorf("node %d asks to add node %d as a learner: a node adds only itself", from, id)
	case voters[id]:
		return "", fmt.Errorf("node %d asks to join as a broker-only node (a learner), but it is a voter of this quorum: a broker-only node needs an id not among controller.quorum.voters", id)
	case len(addr) > maxJoinContextBytes:
		return "", fmt.Errorf("learner %d: controller address of %d bytes", id, len(addr))
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("learner %d: controller address %q is not host:port", id, addr)
	}
	return addr, nil
}

// decodeLearner returns the learner a committed configuration change
// adds, if it is one every member applies. Members apply the same entries
// with the same voters, so they agree on which.
func decodeLearner(e *pb.Entry, voters []uint64) (id uint64, addr string, ok bool) {
	if e.GetType() != pb.EntryConfChange {
		return 0, "", false
	}
	cc := &pb.ConfChange{}
	if err := proto.Unmarshal(e.GetData(), cc); err != nil {
		return 0, "", false
	}
	vs := make(map[uint64]bool, len(voters))
	for _, v := range voters {
		vs[v] = true
	}
	addr, err := checkJoin(cc, cc.GetNodeId(), vs)
	if err != nil {
		return 0, "", false
	}
	return cc.GetNodeId(), addr, true
}

// applyConfChange applies, on the driver, a committed configuration
// change that adds a learner, and starts sending to it. Any other is
// skipped by every member alike (none is ever accepted).
func (q *quorum) applyConfChange(e *pb.Entry) {
	id, addr, ok := decodeLearner(e, q.voters)
	if !ok {
		q.c.logger.Error("metadata quorum configuration change skipped: not a learner joining", "index", e.GetIndex())
		return
	}
	cc := &pb.ConfChange{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: new(id)}
	q.conf = q.rn.ApplyConfChange(cc)
	if q.tr != nil {
		q.tr.addPeer(id, addr)
	}
	q.c.logger.Info("broker-only node added to the metadata quorum as a learner", "learner", id, "controller_addr", addr, "index", e.GetIndex())
}

// isMember reports whether this node is in the quorum's configuration.
func (q *quorum) isMember() bool {
	for _, ids := range [][]uint64{q.conf.GetVoters(), q.conf.GetLearners()} {
		for _, id := range ids {
			if id == q.id {
				return true
			}
		}
	}
	return false
}

// maybeJoin, on each tick of a broker-only node that knows no leader,
// asks a voter to add it: at once when it is not a member, after an
// election timeout when it is (the leader is expected to reach it; its
// address may have changed since it joined). Called by the driver only.
func (q *quorum) maybeJoin() {
	if !q.brokerOnly || q.send == nil {
		return
	}
	if q.rn.BasicStatus().Lead != 0 {
		q.joinTicks, q.joinAsked = 0, 0
		return
	}
	q.joinTicks++
	wait := 1
	if q.isMember() {
		wait = max(int(q.electionTimeout/tickInterval), 2)
	}
	if q.joinTicks < wait || (q.joinTicks-wait)%joinEveryTicks != 0 {
		return
	}
	to := q.voters[q.joinAsked%len(q.voters)]
	q.joinAsked++
	q.send(joinMessage(q.id, to, q.listen))
	if q.joinAsked%joinWarnEvery == 0 {
		q.c.logger.Warn("broker-only node not yet in the metadata quorum: no leader has reached it; are the voters running, and can they reach this node's controller listener?",
			"node", q.id, "voters", q.voters, "controller_listen", q.listen, "requests", q.joinAsked)
	}
}
