package controller

// A read-only view of the metadata quorum, for DescribeQuorum (KIP-595).
// Only the driver goroutine touches the RawNode, so a reader asks the
// driver for a snapshot through a channel; the driver answers between two
// steps, never while it waits for a disk, and the reader holds no lock
// while it waits.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/weir-broker/weir/internal/metadata"
)

// QuorumStatus is the metadata quorum as one node sees it. Offsets are
// Raft indexes: the high watermark is the commit index, a voter's log end
// offset the index up to which the leader knows its log matches. Raft
// counts entries from 1 where Kafka counts offsets from 0, so these are
// Kafka's exclusive end offsets of the same log.
type QuorumStatus struct {
	// NodeID is the node that answered.
	NodeID int32
	// LeaderID is the leader this node knows, -1 when none.
	LeaderID int32
	// LeaderEpoch is the Raft term.
	LeaderEpoch int32
	// HighWatermark is the commit index.
	HighWatermark int64
	// Leading says this node is the leader; only then are the voters'
	// log end offsets and timestamps known.
	Leading bool
	// Voters are the quorum's voting members, by id.
	Voters []VoterStatus
	// Observers are its learners (broker-only nodes), by id; Kafka's
	// observers, which fetch the log without voting.
	Observers []VoterStatus
}

// VoterStatus is one voter as the leader tracks it. Unknown values are -1.
type VoterStatus struct {
	NodeID int32
	// Addr is the voter's controller listener (host:port).
	Addr         string
	LogEndOffset int64
	// LastFetchMs is when the leader last heard from the voter (an append
	// or heartbeat response), in Unix milliseconds.
	LastFetchMs int64
	// LastCaughtUpMs is when the voter's log last matched the leader's
	// whole log, in Unix milliseconds.
	LastCaughtUpMs int64
}

// statusTimeout bounds the wait for the driver's answer.
const statusTimeout = 2 * time.Second

// QuorumStatus returns the metadata quorum as this node sees it. A single
// node answers as a quorum of itself, its own leader, whose local log is
// committed up to its end as soon as it is written.
func (c *Controller) QuorumStatus(ctx context.Context) (QuorumStatus, error) {
	q, ok := c.store.(*quorum)
	if !ok {
		var off int64
		c.View(func(im *metadata.Image) { off = im.Offset + 1 }) // the end offset: the last record's + 1
		now := time.Now().UnixMilli()
		return QuorumStatus{
			NodeID: c.nodeID, LeaderID: c.nodeID, LeaderEpoch: 1, HighWatermark: off, Leading: true,
			Voters: []VoterStatus{{NodeID: c.nodeID, LogEndOffset: off, LastFetchMs: now, LastCaughtUpMs: now}},
		}, nil
	}
	return q.status(ctx)
}

func (q *quorum) status(ctx context.Context) (QuorumStatus, error) {
	if errp := q.failed.Load(); errp != nil {
		return QuorumStatus{}, fail(kerr.KafkaStorageError, "metadata quorum stopped: %v", *errp)
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	reply := make(chan QuorumStatus, 1)
	select {
	case q.statusc <- reply:
	case <-ctx.Done():
		return QuorumStatus{}, fail(kerr.RequestTimedOut, "the metadata quorum's driver did not answer within %v", statusTimeout)
	case <-q.stop:
		return QuorumStatus{}, fail(kerr.NotController, "controller is shutting down")
	}
	st := <-reply // the driver answers at once once it has taken the request
	if qc, err := q.c.cfg.Quorum(); err == nil {
		for i := range st.Voters {
			for _, v := range qc.Voters {
				if v.ID == st.Voters[i].NodeID {
					st.Voters[i].Addr = v.Addr
				}
			}
		}
	}
	return st, nil
}

// peerSeen is what the driver records of a voter's responses while it
// leads, for one term.
type peerSeen struct {
	term        uint64
	fetchMs     int64
	caughtUpMs  int64
	caughtUpSet bool
}

// noteResponse records, on the driver after m was stepped, that the leader
// heard from m's sender and whether the sender's log now matches the
// leader's. Called by the driver only.
func (q *quorum) noteResponse(m *pb.Message) {
	t := m.GetType()
	if t != pb.MsgAppResp && t != pb.MsgHeartbeatResp {
		return
	}
	st := q.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		return
	}
	from := m.GetFrom()
	var own, peer uint64
	q.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		switch id {
		case q.id:
			own = pr.Match
		case from:
			peer = pr.Match
		}
	})
	if q.seen == nil {
		q.seen = make(map[uint64]*peerSeen)
	}
	s := q.seen[from]
	if s == nil || s.term != st.GetTerm() {
		s = &peerSeen{term: st.GetTerm()}
		q.seen[from] = s
	}
	now := time.Now().UnixMilli()
	s.fetchMs = now
	if peer >= own {
		s.caughtUpMs, s.caughtUpSet = now, true
	}
}

// snapshotStatus builds the status on the driver. Called by the driver
// only.
func (q *quorum) snapshotStatus() QuorumStatus {
	st := q.rn.BasicStatus()
	out := QuorumStatus{
		NodeID:        int32(q.id),
		LeaderID:      -1,
		LeaderEpoch:   int32(st.GetTerm()),
		HighWatermark: int64(st.GetCommit()),
		Leading:       st.RaftState == raft.StateLeader,
	}
	if st.Lead != raft.None {
		out.LeaderID = int32(st.Lead)
	}
	match := make(map[uint64]uint64)
	if out.Leading {
		q.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) { match[id] = pr.Match })
	}
	now := time.Now().UnixMilli()
	out.Voters = q.replicaStatus(q.voters, match, st.GetTerm(), now)
	out.Observers = q.replicaStatus(slices.Sorted(slices.Values(q.conf.GetLearners())), match, st.GetTerm(), now)
	return out
}

// replicaStatus describes the members ids from the leader's progress
// (match) and the responses it noted. Called by the driver only.
func (q *quorum) replicaStatus(ids []uint64, match map[uint64]uint64, term uint64, now int64) []VoterStatus {
	var out []VoterStatus
	for _, id := range ids {
		v := VoterStatus{NodeID: int32(id), LogEndOffset: -1, LastFetchMs: -1, LastCaughtUpMs: -1}
		if m, ok := match[id]; ok {
			v.LogEndOffset = int64(m)
			switch s := q.seen[id]; {
			case id == q.id:
				// The leader fetches from itself continuously.
				v.LastFetchMs, v.LastCaughtUpMs = now, now
			case s != nil && s.term == term:
				v.LastFetchMs = s.fetchMs
				if s.caughtUpSet {
					v.LastCaughtUpMs = s.caughtUpMs
				}
			}
		}
		out = append(out, v)
	}
	return out
}
