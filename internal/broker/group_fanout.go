package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/server"
)

// fanOut serves a request naming several groups, which may live on
// different shards. ids[i] is the group of the request's item i; build
// makes the request for one shard's items (their indices, in order) and
// merge folds that shard's response back into final. The reply waits for
// every shard. Before __consumer_offsets exists an empty shard answers.
func (b *Broker) fanOut(ctx context.Context, c *server.Conn, ids []string, final kmsg.Response,
	build func(idx []int) kmsg.Request, merge func(resp kmsg.Response, idx []int)) server.Reply {
	shards, err := b.groups.load(false)
	if err != nil {
		b.logger.Error("group coordinator unavailable", "err", err)
		return func() (kmsg.Response, error) { return nil, err }
	}
	type part struct {
		idx []int
		ch  <-chan kmsg.Response
	}
	var order []*groupShard
	byShard := map[*groupShard][]int{}
	for i, id := range ids {
		var s *groupShard
		if shards != nil {
			s = shards[group.PartitionFor(id, int32(len(shards)))]
		}
		if _, ok := byShard[s]; !ok {
			order = append(order, s)
		}
		byShard[s] = append(byShard[s], i)
	}
	parts := make([]part, len(order))
	for i, s := range order {
		parts[i] = part{idx: byShard[s], ch: b.stepOn(s, c, build(byShard[s]))}
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

// everyShard steps the same request on every shard and merges each
// response into final.
func (b *Broker) everyShard(ctx context.Context, c *server.Conn, req kmsg.Request, final kmsg.Response, merge func(resp kmsg.Response)) server.Reply {
	shards, err := b.groups.load(false)
	if err != nil {
		b.logger.Error("group coordinator unavailable", "err", err)
		return func() (kmsg.Response, error) { return nil, err }
	}
	if shards == nil {
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
