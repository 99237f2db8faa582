package broker

// How group requests reach the shards: a request about one group goes to
// that group's shard; one naming several groups is split by shard and the
// answers merged; ListGroups asks every shard. Before __consumer_offsets
// exists, requests that do not create state are answered by an empty
// shard: no group is known.

import (
	"context"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/server"
)

// stepGroup serves a request for one group. Without create and before
// __consumer_offsets exists, an empty shard answers: no group is known.
func (b *Broker) stepGroup(ctx context.Context, c *server.Conn, groupID string, create bool, req kmsg.Request) server.Reply {
	s, err := b.groups.shardFor(groupID, create)
	if err != nil {
		b.logCoordinatorError("group coordinator", err)
		resp := coordinatorUnavailable(req, errCode(err))
		return func() (kmsg.Response, error) { return resp, nil }
	}
	return awaitResponse(ctx, b.stepOn(s, c, req))
}

// stepOn steps req on s, or on an empty shard when s is nil.
func (b *Broker) stepOn(s *groupShard, c *server.Conn, req kmsg.Request) <-chan kmsg.Response {
	return b.stepOnWith(s, c, nil, req)
}

// stepOnWith is stepOn with the cluster's topics for the shard.
func (b *Broker) stepOnWith(s *groupShard, c *server.Conn, topics map[string]group.TopicInfo, req kmsg.Request) <-chan kmsg.Response {
	in := group.Input{ClientID: c.ClientID, ClientHost: clientHost(c), Req: req, Topics: topics}
	if s == nil {
		ch := make(chan kmsg.Response, 1)
		rd := group.NewShard(b.groups.cfg).Step(nowMs(), in)
		ch <- rd.Responses[0].Msg
		return ch
	}
	return s.step(in)
}

func awaitResponse(ctx context.Context, ch <-chan kmsg.Response) server.Reply {
	return func() (kmsg.Response, error) {
		select {
		case resp, ok := <-ch:
			if !ok {
				return nil, errCoordinatorClosed
			}
			return resp, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// clientHost is the client's address as DescribeGroups shows it.
func clientHost(c *server.Conn) string {
	if c.Remote == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(c.Remote.String())
	if err != nil {
		return "/" + c.Remote.String()
	}
	return "/" + host
}

// coordinatorUnavailable answers a request for one group with code: the
// shard is not here, still loading, or __consumer_offsets cannot be
// created.
func coordinatorUnavailable(req kmsg.Request, code int16) kmsg.Response {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.MemberID = code, r.MemberID
		return resp
	case *kmsg.OffsetCommitRequest:
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.TxnOffsetCommitRequest:
		return txnOffsetCommitError(r, code)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.SyncGroupRequest:
		resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.HeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.LeaveGroupRequest:
		resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.OffsetDeleteRequest:
		resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.OffsetFetchRequest:
		// v0-7 name one group; v0-1 carry errors per partition only.
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = code
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	panic(fmt.Sprintf("coordinatorUnavailable: %T is not a request for one group", req))
}

// fanOut serves a request naming several groups, which may live on
// different shards. ids[i] is the group of the request's item i; build
// makes the request for one shard's items (their indices, in order) and
// merge folds that shard's response back into final; fail answers item i
// with an error code (NOT_COORDINATOR when another node runs its shard). The reply waits for
// every shard. Before __consumer_offsets exists an empty shard answers.
func (b *Broker) fanOut(ctx context.Context, c *server.Conn, ids []string, final kmsg.Response,
	build func(idx []int) kmsg.Request, merge func(resp kmsg.Response, idx []int), fail func(i int, code int16)) server.Reply {
	return b.fanOutWith(ctx, c, nil, ids, final, build, merge, fail)
}

// fanOutWith is fanOut for requests that carry the cluster's topics to
// the shards (the consumer group protocol's).
func (b *Broker) fanOutWith(ctx context.Context, c *server.Conn, topics map[string]group.TopicInfo, ids []string, final kmsg.Response,
	build func(idx []int) kmsg.Request, merge func(resp kmsg.Response, idx []int), fail func(i int, code int16)) server.Reply {
	type part struct {
		idx []int
		ch  <-chan kmsg.Response
	}
	var order []*groupShard
	byShard := map[*groupShard][]int{}
	for i, id := range ids {
		s, err := b.groups.shardFor(id, false)
		if err != nil {
			// Not coordinated here, or not yet: that group's answer is
			// the error, and the client looks its coordinator up again.
			b.logCoordinatorError("group coordinator", err)
			fail(i, errCode(err))
			continue
		}
		if _, ok := byShard[s]; !ok {
			order = append(order, s)
		}
		byShard[s] = append(byShard[s], i)
	}
	parts := make([]part, len(order))
	for i, s := range order {
		parts[i] = part{idx: byShard[s], ch: b.stepOnWith(s, c, topics, build(byShard[s]))}
	}
	return func() (kmsg.Response, error) {
		for _, p := range parts {
			resp, err := awaitResponse(ctx, p.ch)()
			if err != nil {
				return nil, err
			}
			merge(resp, p.idx)
		}
		return final, nil
	}
}

// everyShard steps the same request on every shard this node runs and
// merges each response into final.
func (b *Broker) everyShard(ctx context.Context, c *server.Conn, req kmsg.Request, final kmsg.Response, merge func(resp kmsg.Response)) server.Reply {
	shards := b.groups.set.loaded()
	if len(shards) == 0 {
		shards = []*groupShard{nil}
	}
	chans := make([]<-chan kmsg.Response, len(shards))
	for i, s := range shards {
		chans[i] = b.stepOn(s, c, req)
	}
	return func() (kmsg.Response, error) {
		for _, ch := range chans {
			resp, err := awaitResponse(ctx, ch)()
			if err != nil {
				return nil, err
			}
			merge(resp)
		}
		return final, nil
	}
}
