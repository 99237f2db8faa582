package broker

// OffsetCommit v0-9, OffsetFetch v0-9 and OffsetDelete v0, served by
// internal/group (offsets.go there says what each version adds).
// OffsetCommit answers UNKNOWN_TOPIC_OR_PARTITION itself for partitions
// that do not exist and creates __consumer_offsets on first use; an
// OffsetCommit is answered once its records are durable. OffsetFetch v8+
// names several groups, which are looked up on their own shards. v10 of
// both (topic ids, KIP-848) is not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/server"
)

func (b *Broker) handleOffsetCommit(ctx context.Context, c *server.Conn, req *kmsg.OffsetCommitRequest) server.Reply {
	known := *req
	known.Topics = nil
	all := true
	for _, t := range req.Topics {
		kt := t
		kt.Partitions = nil
		for _, p := range t.Partitions {
			if b.partitionExists(t.Topic, p.Partition) {
				kt.Partitions = append(kt.Partitions, p)
			} else {
				all = false
			}
		}
		if len(kt.Partitions) > 0 {
			known.Topics = append(known.Topics, kt)
		}
	}
	if all {
		return b.stepGroup(ctx, c, req.Group, true, req)
	}
	var reply server.Reply
	if len(known.Topics) > 0 {
		reply = b.stepGroup(ctx, c, req.Group, true, &known)
	}
	return func() (kmsg.Response, error) {
		var got *kmsg.OffsetCommitResponse
		if reply != nil {
			resp, err := reply()
			if err != nil {
				return nil, err
			}
			got = resp.(*kmsg.OffsetCommitResponse)
		}
		return mergeCommit(req, got, b), nil
	}
}

// mergeCommit answers every partition of req: those that exist from got
// (the coordinator's answer for them, in order), the rest with
// UNKNOWN_TOPIC_OR_PARTITION.
func mergeCommit(req *kmsg.OffsetCommitRequest, got *kmsg.OffsetCommitResponse, b *Broker) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	ti := 0
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		pi, used := 0, false
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			if b.partitionExists(t.Topic, p.Partition) && got != nil && ti < len(got.Topics) && pi < len(got.Topics[ti].Partitions) {
				rp.ErrorCode = got.Topics[ti].Partitions[pi].ErrorCode
				pi++
				used = true
			} else {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		if used {
			ti++
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (b *Broker) handleOffsetFetch(ctx context.Context, c *server.Conn, req *kmsg.OffsetFetchRequest) server.Reply {
	if req.Version < 8 {
		return b.stepGroup(ctx, c, req.Group, false, req)
	}
	final := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	final.Groups = make([]kmsg.OffsetFetchResponseGroup, len(req.Groups))
	ids := make([]string, len(req.Groups))
	for i, g := range req.Groups {
		ids[i] = g.Group
	}
	return b.fanOut(ctx, c, ids, final, func(idx []int) kmsg.Request {
		sub := *req
		sub.Groups = make([]kmsg.OffsetFetchRequestGroup, len(idx))
		for i, j := range idx {
			sub.Groups[i] = req.Groups[j]
		}
		return &sub
	}, func(resp kmsg.Response, idx []int) {
		for i, j := range idx {
			final.Groups[j] = resp.(*kmsg.OffsetFetchResponse).Groups[i]
		}
	}, func(i int, code int16) {
		final.Groups[i] = kmsg.NewOffsetFetchResponseGroup()
		final.Groups[i].Group, final.Groups[i].ErrorCode = req.Groups[i].Group, code
	})
}

func (b *Broker) handleOffsetDelete(ctx context.Context, c *server.Conn, req *kmsg.OffsetDeleteRequest) server.Reply {
	return b.stepGroup(ctx, c, req.Group, false, req)
}
