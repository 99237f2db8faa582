package controller

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// run is the driver: it ticks, steps messages in, and handles each Ready
// as the library's contract asks: persist the hard state, entries and
// snapshot (fsynced), then send messages, then hand committed entries to
// the applier, then Advance.
func (q *quorum) run() {
	defer q.wg.Done()
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-ticker.C:
			q.rn.Tick()
			q.maybeJoin()
		case m := <-q.recvc:
			_ = q.rn.Step(m) // messages from an old term or unknown node are dropped
			q.noteResponse(m)
		case p := <-q.propc:
			if st := q.rn.BasicStatus(); st.RaftState != raft.StateLeader && !(p.forward && st.Lead != raft.None) {
				p.done <- q.notController()
			} else if err := q.rn.Propose(p.data); err != nil {
				p.done <- fail(kerr.NotController, "proposal dropped: %v", err)
			} else {
				q.markProposed(p.seq)
			}
		case reply := <-q.statusc:
			reply <- q.snapshotStatus()
		case <-q.transferc:
			q.transferLeadership()
		case r := <-q.reportc:
			if r.snapshot {
				q.rn.ReportSnapshot(r.id, r.status)
			} else {
				q.rn.ReportUnreachable(r.id)
			}
		case s := <-q.snapc:
			if err := q.compact(s); err != nil {
				q.fail(err)
				return
			}
		}
		for q.rn.HasReady() {
			if err := q.handleReady(q.rn.Ready()); err != nil {
				if err != errStopping {
					q.fail(err)
				}
				return
			}
		}
	}
}

// transferLeadership asks the most up-to-date follower to take over; the
// library sends it the log it lacks, then tells it to campaign at once.
func (q *quorum) transferLeadership() {
	st := q.rn.Status()
	if st.RaftState != raft.StateLeader {
		return
	}
	var best, match uint64
	for id, pr := range st.Progress {
		// A learner (a broker-only node) cannot lead.
		if id != q.id && !pr.IsLearner && (best == 0 || pr.Match > match) {
			best, match = id, pr.Match
		}
	}
	if best != 0 {
		q.c.logger.Info("handing the metadata quorum's leadership over before shutting down", "node", q.id, "to", best)
		q.rn.TransferLeader(best)
	}
}

func (q *quorum) markProposed(seq uint64) {
	q.waitMu.Lock()
	if w := q.waiters[seq]; w != nil {
		w.proposed = true
	}
	q.waitMu.Unlock()
}

// failProposed answers every proposal handed to the Raft node before the
// quorum's leader changed from was to now: the old leader may have lost
// it (a follower's forwarded entry dies with the leader it went to), and
// waiting out the proposal timeout would hold up the callers' next
// changes, among them the heartbeats that keep brokers unfenced. The
// answer is NOT_CONTROLLER, retriable, with the outcome unknown as after
// a timeout: the entry may still be committed by the new leader.
func (q *quorum) failProposed(was, now uint64) {
	err := fail(kerr.NotController, "the metadata quorum's leader changed from node %d to node %d while the change was pending: it may or may not be applied", was, now)
	q.waitMu.Lock()
	defer q.waitMu.Unlock()
	for _, w := range q.waiters {
		if w.proposed {
			w.answer(err)
		}
	}
}

// fail stops the driver after a storage failure: continuing could break
// the promises this node made to the quorum.
func (q *quorum) fail(err error) {
	q.c.logger.Error("metadata quorum stopped on this node: storage failed", "err", err)
	q.failed.Store(&err)
	q.isLeader.Store(false)
	q.leader.Store(0)
}

// errStopping is handleReady's answer when the node stopped while the
// Ready was being handed to the applier.
var errStopping = errors.New("metadata quorum stopping")

func (q *quorum) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		lead, leading := rd.SoftState.Lead, rd.SoftState.RaftState == raft.StateLeader
		if was := q.leader.Swap(lead); was != lead {
			q.c.logger.Info("metadata quorum leader changed", "node", q.id, "leader", lead, "this_node_leads", leading)
			q.failProposed(was, lead)
		}
		if leading && !q.isLeader.Load() {
			q.leaderGen.Add(1)
		}
		q.isLeader.Store(leading)
	}
	snap := rd.Snapshot
	hasSnap := snap != nil && !raft.IsEmptySnap(snap)
	var hs *pb.HardState
	if !raft.IsEmptyHardState(rd.HardState) {
		hs = rd.HardState
	}
	if hs != nil || len(rd.Entries) > 0 || hasSnap {
		var s *pb.Snapshot
		if hasSnap {
			s = snap
		}
		if err := q.store.save(hs, rd.Entries, s); err != nil {
			return err
		}
	}
	if hasSnap {
		if err := q.mem.ApplySnapshot(snap); err != nil {
			return err
		}
		q.conf = snap.GetMetadata().GetConfState()
	}
	if hs != nil {
		if err := q.mem.SetHardState(hs); err != nil {
			return err
		}
	}
	if err := q.mem.Append(rd.Entries); err != nil {
		return err
	}
	for _, m := range rd.Messages {
		q.send(m)
	}
	// Configuration changes take effect on the Raft node as they are
	// committed, before the next Ready; the applier records the learners'
	// addresses in the image in log order.
	for _, e := range rd.CommittedEntries {
		if e.GetType() == pb.EntryConfChange || e.GetType() == pb.EntryConfChangeV2 {
			q.applyConfChange(e)
		}
	}
	if hasSnap || len(rd.CommittedEntries) > 0 {
		t := applyTask{entries: rd.CommittedEntries}
		if hasSnap {
			t.snap = snap
		}
		if q.inline {
			if err := q.applyTask(t); err != nil {
				return err
			}
			q.rn.Advance(rd)
			return nil
		}
		select {
		case q.applyc <- t:
		case <-q.stop:
			// Not advanced: the driver must not ask for another Ready.
			return errStopping
		}
	}
	q.rn.Advance(rd)
	return nil
}

// compact records a snapshot the applier took and drops the log it covers,
// but for a tail of keepEntries.
func (q *quorum) compact(s snapRequest) error {
	first, _ := q.mem.FirstIndex()
	last, _ := q.mem.LastIndex()
	if s.index < first || s.index > last {
		return nil // a snapshot from the leader got there first
	}
	// The configuration at the snapshot's index: the voters, fixed, and
	// the learners the image held there.
	conf := &pb.ConfState{Voters: q.voters, Learners: s.learners}
	snap, err := q.mem.CreateSnapshot(s.index, conf, s.data)
	if err == raft.ErrSnapOutOfDate {
		return nil
	}
	if err != nil {
		return err
	}
	compactIndex := uint64(0)
	if s.index > keepEntries {
		compactIndex = s.index - keepEntries
	}
	if err := q.store.saveSnapshot(snap, compactIndex); err != nil {
		return err
	}
	if compactIndex >= first {
		if err := q.mem.Compact(compactIndex); err != nil && err != raft.ErrCompacted {
			return err
		}
	}
	q.c.logger.Debug("metadata snapshot taken", "index", s.index, "bytes", len(s.data))
	return nil
}
