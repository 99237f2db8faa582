package group

// TxnOffsetCommit v0-3 (KIP-98; v3 carries the generation, member id and
// instance id of KIP-447, checked like OffsetCommit's when they name a
// member; a commit naming none, as v0-v2 always do, is accepted whatever
// the group's members, as Kafka does). The offsets are
// written at once, in a transactional batch of the producer, and stay
// pending: invisible to OffsetFetch, and UNSTABLE_OFFSET_COMMIT to one
// that requires stable offsets, until the transaction coordinator writes
// the transaction's marker to this partition and calls CompleteTxn. A
// commit makes them the group's offsets; an abort drops them. On replay
// the same happens from the stored batches and markers.

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Shard) txnCommitOffsets(nowMs int64, in Input, req *kmsg.TxnOffsetCommitRequest) {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	answer := func(code func(topic string, partition int32) int16) {
		for _, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code(t.Topic, p.Partition)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		s.respond(in.Token, resp)
	}
	all := func(c int16) func(string, int32) int16 { return func(string, int32) int16 { return c } }

	generation, memberID, instanceID := int32(-1), "", (*string)(nil)
	if req.Version >= 3 {
		generation, memberID, instanceID = req.Generation, req.MemberID, req.InstanceID
	}
	g := s.groups[req.Group]
	if g == nil {
		if generation >= 0 {
			answer(all(kerr.IllegalGeneration.Code))
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
	if code := s.commitCheck(nowMs, g, generation, memberID, instanceID, true, committed); code != 0 {
		answer(all(code))
		return
	}
	offs := map[topicPartition]offset{}
	tooLarge := map[topicPartition]bool{}
	var recs []Record
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tp := topicPartition{t.Topic, p.Partition}
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			if len(md) > s.cfg.MaxMetadataBytes {
				tooLarge[tp] = true
				continue
			}
			o := offset{offset: p.Offset, leaderEpoch: p.LeaderEpoch, metadata: md, commitMs: nowMs, seq: s.nextSeq()}
			if req.Version < 2 {
				o.leaderEpoch = -1
			}
			offs[tp] = o
			recs = append(recs, Record{Key: offsetKey(g.id, tp), Value: offsetValue(o)})
		}
	}
	codeOf := func(topic string, partition int32) int16 {
		if tooLarge[topicPartition{topic, partition}] {
			return kerr.OffsetMetadataTooLarge.Code
		}
		return 0
	}
	if len(recs) == 0 {
		answer(codeOf)
		return
	}
	pid := req.ProducerID
	g.inflight++
	s.appendAs(&TxnProducer{ID: pid, Epoch: req.ProducerEpoch}, recs, func(_ int64, err error) {
		g.inflight--
		if err != nil {
			code := kerr.CoordinatorNotAvailable.Code
			if errors.Is(err, kerr.InvalidTxnState) {
				// The transaction ended (its marker reached the partition)
				// after the coordinator confirmed the group was in it.
				code = kerr.InvalidTxnState.Code
			}
			answer(all(code))
			return
		}
		g.addTxnOffsets(pid, offs)
		answer(codeOf)
	})
}

func (g *group) addTxnOffsets(pid int64, offs map[topicPartition]offset) {
	if g.txnOffsets == nil {
		g.txnOffsets = map[int64]map[topicPartition]offset{}
	}
	pending := g.txnOffsets[pid]
	if pending == nil {
		pending = map[topicPartition]offset{}
		g.txnOffsets[pid] = pending
	}
	for tp, o := range offs {
		pending[tp] = o
	}
}

// CompleteTxn ends producer pid's pending transactional offsets in every
// group of the shard: with commit they become the groups' offsets, else
// they are dropped. The driver calls it once the marker is durable.
//
// An append made before the call may have been written before the marker
// and yet not be reported durable yet (the driver awaits each on its own
// goroutine); the outcome waits for every such append so that it covers
// their offsets too, which would otherwise stay pending until the
// producer's next marker and take its outcome.
func (s *Shard) CompleteTxn(nowMs int64, pid int64, commit bool) Ready {
	if len(s.inflight) == 0 {
		s.completeTxn(pid, commit)
		return s.ready()
	}
	s.inflight = append(s.inflight, &inflightAppend{done: true, onDone: func(int64, error) { s.completeTxn(pid, commit) }})
	return s.ready()
}

func (s *Shard) completeTxn(pid int64, commit bool) {
	for _, g := range s.groups {
		pending, ok := g.txnOffsets[pid]
		if !ok {
			continue
		}
		delete(g.txnOffsets, pid)
		if commit && g.state != Dead {
			for tp, o := range pending {
				g.setOffset(tp, o)
			}
		}
	}
}

// ReplayTxn applies a record of a transactional batch of producer pid: a
// pending offset until ReplayMarker ends it.
func (s *Shard) ReplayTxn(pid int64, key, value []byte) error {
	var k kmsg.OffsetCommitKey
	if err := k.ReadFrom(key); err != nil || k.Version > 1 {
		return fmt.Errorf("group: transactional record is not an offset commit (%v)", err)
	}
	var v kmsg.OffsetCommitValue
	if err := v.ReadFrom(value); err != nil {
		return fmt.Errorf("group %q: transactional offset value: %w", k.Group, err)
	}
	g := s.groups[k.Group]
	if g == nil {
		g = newGroup(k.Group, 0)
		s.groups[k.Group] = g
	}
	epoch := int32(-1)
	if v.Version >= 3 {
		epoch = v.LeaderEpoch
	}
	g.addTxnOffsets(pid, map[topicPartition]offset{{k.Topic, k.Partition}: {offset: v.Offset, leaderEpoch: epoch, metadata: v.Metadata, commitMs: v.CommitTimestamp, seq: s.nextSeq()}})
	return nil
}

// ReplayMarker applies a transaction marker read back in log order.
func (s *Shard) ReplayMarker(pid int64, commit bool) { s.completeTxn(pid, commit) }
