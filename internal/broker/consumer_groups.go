package broker

// ConsumerGroupHeartbeat v0-1 and ConsumerGroupDescribe v0-1: the consumer
// group protocol (KIP-848), served by internal/group (consumer_*.go there
// say what each version adds). Both carry the cluster's topics to the
// shard, which resolves subscriptions (names and regexes) against them and
// names assigned topics by id. A heartbeat creates __consumer_offsets on
// first use, as JoinGroup does.

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/server"
)

func (b *Broker) handleConsumerGroupHeartbeat(ctx context.Context, c *server.Conn, req *kmsg.ConsumerGroupHeartbeatRequest) server.Reply {
	s, err := b.groups.shardFor(req.Group, true)
	if err != nil {
		b.logCoordinatorError("group coordinator", err)
		resp := coordinatorUnavailable(req, errCode(err))
		return func() (kmsg.Response, error) { return resp, nil }
	}
	return awaitResponse(ctx, b.stepOnWith(s, c, b.topicInfos(), req))
}

func (b *Broker) handleConsumerGroupDescribe(ctx context.Context, c *server.Conn, req *kmsg.ConsumerGroupDescribeRequest) server.Reply {
	final := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	final.Groups = make([]kmsg.ConsumerGroupDescribeResponseGroup, len(req.Groups))
	topics := b.topicInfos()
	return b.fanOutWith(ctx, c, topics, req.Groups, final, func(idx []int) kmsg.Request {
		sub := *req
		sub.Groups = pick(req.Groups, idx)
		return &sub
	}, func(resp kmsg.Response, idx []int) {
		for i, j := range idx {
			final.Groups[j] = resp.(*kmsg.ConsumerGroupDescribeResponse).Groups[i]
		}
	}, func(i int, code int16) {
		final.Groups[i] = kmsg.NewConsumerGroupDescribeResponseGroup()
		final.Groups[i].Group, final.Groups[i].ErrorCode = req.Groups[i], code
	})
}

// topicInfos is the cluster's topics as the consumer group protocol needs
// them: id and partition count by name.
func (b *Broker) topicInfos() map[string]group.TopicInfo {
	out := map[string]group.TopicInfo{}
	b.ctrl.View(func(im *metadata.Image) {
		for name, t := range im.Topics {
			out[name] = group.TopicInfo{ID: t.ID, Partitions: int32(len(t.Partitions))}
		}
	})
	return out
}

// consumerAssignors reads group.consumer.assignors as the short names
// clients send.
func consumerAssignors(list string) []string {
	var out []string
	for _, part := range strings.Split(list, ",") {
		if n := config.AssignorName(part); n != "" {
			out = append(out, n)
		}
	}
	return out
}
