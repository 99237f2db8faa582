package group

// OffsetCommit v0-9, OffsetDelete v0, and offset expiration.
//
// OffsetCommit: v0 has no generation (a simple commit); v1 carries a
// per-partition timestamp and v2-4 a retention time, both ignored:
// offsets.retention.minutes applies. v6+ carries the leader epoch, v7+
// group.instance.id. A commit with generation -1 is accepted for a group
// with no members (a group that only stores offsets, or one whose
// consumers are gone); otherwise the member and generation must match.
// The response waits until the commit's records are durable.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Shard) commitOffsets(nowMs int64, in Input, req *kmsg.OffsetCommitRequest) {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := make([][]int16, len(req.Topics))
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
	}
	answer := func() {
		for i, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for j, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		s.respond(in.Token, resp)
	}
	setAll := func(code int16) {
		for i := range codes {
			for j := range codes[i] {
				codes[i][j] = code
			}
		}
	}

	generation, memberID := req.Generation, req.MemberID
	if req.Version == 0 {
		generation, memberID = -1, ""
	}
	g := s.groups[req.Group]
	if g == nil {
		if generation >= 0 {
			// Not a group we manage: a member of a generation we never
			// had, or of a group since deleted.
			setAll(kerr.IllegalGeneration.Code)
			answer()
			return
		}
		g = newGroup(req.Group, nowMs)
		s.groups[req.Group] = g
	}
	committed := assignment{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			committed.add(t.Topic, p.Partition)
		}
	}
	if code := s.commitCheck(nowMs, g, generation, memberID, req.InstanceID, false, committed); code != 0 {
		setAll(code)
		answer()
		return
	}

	type commit struct {
		tp topicPartition
		o  offset
	}
	var recs []Record
	var commits []commit
	var where [][2]int
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			if len(md) > s.cfg.MaxMetadataBytes {
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			c := commit{topicPartition{t.Topic, p.Partition}, offset{offset: p.Offset, leaderEpoch: p.LeaderEpoch, metadata: md, commitMs: nowMs, seq: s.nextSeq()}}
			if req.Version < 6 {
				c.o.leaderEpoch = -1
			}
			recs = append(recs, Record{Key: offsetKey(g.id, c.tp), Value: offsetValue(c.o)})
			commits = append(commits, c)
			where = append(where, [2]int{i, j})
		}
	}
	if len(recs) == 0 {
		answer()
		return
	}
	g.inflight++
	s.append(recs, func(_ int64, err error) {
		g.inflight--
		if err != nil {
			for _, w := range where {
				codes[w[0]][w[1]] = kerr.CoordinatorNotAvailable.Code
			}
			answer()
			return
		}
		if s.groups[g.id] == g && g.state != Dead {
			for _, c := range commits {
				g.setOffset(c.tp, c.o)
			}
		}
		answer()
	})
}

// commitCheck decides whether a member may commit for the group now.
// A transactional commit (TxnOffsetCommit) that names no member —
// generation -1, an empty member id and no instance id, as v0-v2 always
// are — comes from a producer outside the group and is not checked
// against its members (KIP-98, KIP-447): the transaction, not the
// group's generation, fences it. One that names a member is checked like
// OffsetCommit's, except that it is not refused while the group
// completes a rebalance, since it is only applied once the transaction
// commits.
//
// committed are the partitions being committed; a consumer group
// (KIP-848) checks them against the member's assignment.
func (s *Shard) commitCheck(nowMs int64, g *group, generation int32, memberID string, instanceID *string, transactional bool, committed assignment) int16 {
	anonymous := generation < 0 && memberID == "" && (instanceID == nil || *instanceID == "")
	switch {
	case g.state == Dead:
		return kerr.CoordinatorNotAvailable.Code
	case g.cg != nil:
		return consumerCommitCheck(g.cg, generation, memberID, transactional && anonymous, committed)
	case g.fenced(instanceID, memberID):
		return kerr.FencedInstanceID.Code
	case generation < 0 && g.state == Empty:
		return 0 // a group used only to store offsets
	case transactional && anonymous:
		return 0
	}
	m := g.members[memberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case generation != g.generation:
		return kerr.IllegalGeneration.Code
	case g.state == CompletingRebalance && !transactional:
		return kerr.RebalanceInProgress.Code
	}
	// Members commit during a rebalance (before giving partitions up),
	// and a commit shows the member is alive.
	m.deadline = nowMs + m.sessionTimeoutMs
	return 0
}

// consumerCommitCheck is commitCheck for a consumer group (KIP-848): the
// generation is the member epoch. A commit naming no member (epoch -1, no
// member id) is an admin's or a consumer's outside the group: it may
// commit only while the group has no members, except a transactional
// one, which its transaction fences. A member commits at its current
// epoch; at an older epoch (a commit sent before a heartbeat moved the
// member on) it may still commit partitions it holds now, which no other
// member can own. Anything else is STALE_MEMBER_EPOCH.
func consumerCommitCheck(cg *consumerGroup, epoch int32, memberID string, anonymousTxn bool, committed assignment) int16 {
	if memberID == "" && epoch < 0 {
		if len(cg.members) == 0 || anonymousTxn {
			return 0
		}
		return kerr.UnknownMemberID.Code
	}
	m := cg.members[memberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case epoch == m.epoch:
		return 0
	case epoch < m.epoch && committed.subsetOf(m.assigned.union(m.revoking)):
		return 0
	}
	return kerr.StaleMemberEpoch.Code
}

// OffsetDelete v0: an empty group's offsets can all go; a consumer group
// with members keeps those of topics it subscribes to
// (GROUP_SUBSCRIBED_TO_TOPIC); another group with members keeps all
// (NON_EMPTY_GROUP). The answer waits until the tombstones are durable.
func (s *Shard) deleteOffsets(in Input, req *kmsg.OffsetDeleteRequest) {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	g := s.groups[req.Group]
	switch {
	case g == nil || g.state == Dead:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		s.respond(in.Token, resp)
		return
	case g.state != Empty && g.protocolType != "consumer":
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		s.respond(in.Token, resp)
		return
	}
	subscribed := map[string]bool{}
	if g.state != Empty {
		subscribed = g.subscribedTopics()
	}
	if g.cg != nil {
		// A consumer group's subscribed topics are those its members'
		// target assignments hold (regex subscriptions resolved).
		for _, a := range g.cg.target {
			for t := range a {
				subscribed[t] = true
			}
		}
		for _, m := range g.cg.members {
			for _, t := range m.subscribedNames {
				subscribed[t] = true
			}
		}
	}
	var recs []Record
	type tombstone struct {
		tp  topicPartition
		seq uint64
	}
	var gone []tombstone
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			tp := topicPartition{t.Topic, p.Partition}
			switch _, ok := g.offsets[tp]; {
			case subscribed[t.Topic]:
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			case ok || g.hasPending(tp):
				recs = append(recs, Record{Key: offsetKey(g.id, tp)})
				gone = append(gone, tombstone{tp, s.nextSeq()})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(recs) == 0 {
		s.respond(in.Token, resp)
		return
	}
	s.append(recs, func(_ int64, err error) {
		if err != nil {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		} else {
			for _, t := range gone {
				g.dropOffset(t.tp, t.seq)
			}
		}
		s.respond(in.Token, resp)
	})
}

// subscribedTopics decodes the consumer-protocol subscriptions of the
// members. A subscription that cannot be read keeps every offset: the
// group is then treated as subscribed to all topics it has offsets for.
func (g *group) subscribedTopics() map[string]bool {
	topics := map[string]bool{}
	g.each(func(m *member) {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			for tp := range g.offsets {
				topics[tp.topic] = true
			}
			return
		}
		for _, t := range md.Topics {
			topics[t] = true
		}
	})
	return topics
}

// expireOffsets removes the offsets of empty groups older than the
// retention (counted from the later of the commit and the moment the
// group became empty), and forgets empty groups with no offsets left.
func (s *Shard) expireOffsets(nowMs int64) {
	for _, id := range s.groupIDs() {
		g := s.groups[id]
		if g.state != Empty || g.inflight > 0 || g.hasMembers() {
			continue
		}
		var recs []Record
		for tp, o := range g.offsets {
			// An offset a transaction is about to replace does not expire
			// under it.
			if nowMs-max(o.commitMs, g.stateSinceMs) >= s.cfg.OffsetsRetentionMs && !g.hasPending(tp) {
				recs = append(recs, Record{Key: offsetKey(g.id, tp)})
				g.dropOffset(tp, s.nextSeq())
			}
		}
		if len(g.offsets) == 0 && len(g.txnOffsets) == 0 {
			if g.cg != nil {
				recs = append(recs, Record{Key: consumerGroupKey(g.id)})
			}
			recs = append(recs, Record{Key: groupKey(g.id)})
			delete(s.groups, id)
		}
		if len(recs) > 0 {
			sort.Slice(recs, func(i, j int) bool { return string(recs[i].Key) < string(recs[j].Key) })
			s.append(recs, func(int64, error) {})
		}
	}
}
