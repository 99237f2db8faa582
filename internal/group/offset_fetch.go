package group

// OffsetFetch v0-9: v2+ fetches every committed offset when the topic list
// is null and has a top-level error; v5+ returns leader epochs; v7+
// honours require_stable; v8+ fetches several groups at once (the driver
// splits them by shard; v9's member id and epoch are for KIP-848 groups
// and ignored). Only durable commits are visible.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetchedPartition is one partition's answer to OffsetFetch.
type fetchedPartition struct {
	partition   int32
	offset      int64
	leaderEpoch int32
	metadata    string
	code        int16
}

type fetchedTopic struct {
	topic      string
	partitions []fetchedPartition
}

// requestedTopic is one topic an OffsetFetch asks about.
type requestedTopic struct {
	topic      string
	partitions []int32
}

// fetchGroup answers OffsetFetch for one group; topics nil means every
// committed offset.
func (s *Shard) fetchGroup(id string, topics []requestedTopic, requireStable bool) []fetchedTopic {
	g := s.groups[id]
	if g != nil && g.state == Dead {
		g = nil
	}
	lookup := func(tp topicPartition) fetchedPartition {
		f := fetchedPartition{partition: tp.partition, offset: -1, leaderEpoch: -1}
		if g == nil {
			return f
		}
		if requireStable && g.pendingTxnOffset(tp) {
			f.code = kerr.UnstableOffsetCommit.Code
			return f
		}
		if o, ok := g.offsets[tp]; ok {
			f.offset, f.leaderEpoch, f.metadata = o.offset, o.leaderEpoch, o.metadata
		}
		return f
	}
	if topics == nil {
		if g == nil {
			return nil
		}
		byTopic := map[string][]int32{}
		for tp := range g.offsets {
			byTopic[tp.topic] = append(byTopic[tp.topic], tp.partition)
		}
		for t, ps := range byTopic {
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			topics = append(topics, requestedTopic{t, ps})
		}
		sort.Slice(topics, func(i, j int) bool { return topics[i].topic < topics[j].topic })
	}
	out := make([]fetchedTopic, 0, len(topics))
	for _, t := range topics {
		ft := fetchedTopic{topic: t.topic}
		for _, p := range t.partitions {
			ft.partitions = append(ft.partitions, lookup(topicPartition{t.topic, p}))
		}
		out = append(out, ft)
	}
	return out
}

func (s *Shard) fetchOffsets(in Input, req *kmsg.OffsetFetchRequest) {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version < 8 {
		var topics []requestedTopic
		if req.Topics != nil || req.Version < 2 {
			topics = []requestedTopic{}
			for _, t := range req.Topics {
				topics = append(topics, requestedTopic{t.Topic, t.Partitions})
			}
		}
		for _, ft := range s.fetchGroup(req.Group, topics, req.RequireStable) {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = ft.topic
			for _, fp := range ft.partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = fp.partition, fp.offset, fp.leaderEpoch, fp.code
				md := fp.metadata
				rp.Metadata = &md
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		s.respond(in.Token, resp)
		return
	}
	for _, rg := range req.Groups {
		og := kmsg.NewOffsetFetchResponseGroup()
		og.Group = rg.Group
		if code := s.fetchMemberCheck(rg); code != 0 {
			og.ErrorCode = code
			resp.Groups = append(resp.Groups, og)
			continue
		}
		var topics []requestedTopic
		if rg.Topics != nil {
			topics = []requestedTopic{}
			for _, t := range rg.Topics {
				topics = append(topics, requestedTopic{t.Topic, t.Partitions})
			}
		}
		for _, ft := range s.fetchGroup(rg.Group, topics, req.RequireStable) {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = ft.topic
			for _, fp := range ft.partitions {
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = fp.partition, fp.offset, fp.leaderEpoch, fp.code
				md := fp.metadata
				rp.Metadata = &md
				rt.Partitions = append(rt.Partitions, rp)
			}
			og.Topics = append(og.Topics, rt)
		}
		resp.Groups = append(resp.Groups, og)
	}
	s.respond(in.Token, resp)
}

// fetchMemberCheck is OffsetFetch v9+'s check of a consumer group member
// (KIP-848): a request naming a member must come from a current member at
// its current epoch. A request naming none (an admin's) is not checked.
func (s *Shard) fetchMemberCheck(rg kmsg.OffsetFetchRequestGroup) int16 {
	g := s.groups[rg.Group]
	if rg.MemberID == nil || *rg.MemberID == "" || g == nil || g.cg == nil {
		return 0
	}
	m := g.cg.members[*rg.MemberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case rg.MemberEpoch != m.epoch:
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}
