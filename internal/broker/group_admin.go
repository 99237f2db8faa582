package broker

// DescribeGroups v0-6, ListGroups v0-5 and DeleteGroups v0-2, served by
// internal/group (admin.go there says what each version adds). Each names
// groups that may live on different shards: DescribeGroups and
// DeleteGroups ask each group's own shard, ListGroups asks every shard and
// lists the groups by id.

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/server"
)

func (b *Broker) handleDescribeGroups(ctx context.Context, c *server.Conn, req *kmsg.DescribeGroupsRequest) server.Reply {
	final := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	final.Groups = make([]kmsg.DescribeGroupsResponseGroup, len(req.Groups))
	return b.fanOut(ctx, c, req.Groups, final, func(idx []int) kmsg.Request {
		sub := *req
		sub.Groups = pick(req.Groups, idx)
		return &sub
	}, func(resp kmsg.Response, idx []int) {
		for i, j := range idx {
			final.Groups[j] = resp.(*kmsg.DescribeGroupsResponse).Groups[i]
		}
	}, func(i int, code int16) {
		final.Groups[i] = kmsg.NewDescribeGroupsResponseGroup()
		final.Groups[i].Group, final.Groups[i].ErrorCode = req.Groups[i], code
	})
}

func (b *Broker) handleDeleteGroups(ctx context.Context, c *server.Conn, req *kmsg.DeleteGroupsRequest) server.Reply {
	final := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	final.Groups = make([]kmsg.DeleteGroupsResponseGroup, len(req.Groups))
	return b.fanOut(ctx, c, req.Groups, final, func(idx []int) kmsg.Request {
		sub := *req
		sub.Groups = pick(req.Groups, idx)
		return &sub
	}, func(resp kmsg.Response, idx []int) {
		for i, j := range idx {
			final.Groups[j] = resp.(*kmsg.DeleteGroupsResponse).Groups[i]
		}
	}, func(i int, code int16) {
		final.Groups[i] = kmsg.NewDeleteGroupsResponseGroup()
		final.Groups[i].Group, final.Groups[i].ErrorCode = req.Groups[i], code
	})
}

func (b *Broker) handleListGroups(ctx context.Context, c *server.Conn, req *kmsg.ListGroupsRequest) server.Reply {
	final := req.ResponseKind().(*kmsg.ListGroupsResponse)
	reply := b.everyShard(ctx, c, req, final, func(resp kmsg.Response) {
		final.Groups = append(final.Groups, resp.(*kmsg.ListGroupsResponse).Groups...)
	})
	return func() (kmsg.Response, error) {
		resp, err := reply()
		if err == nil {
			sort.Slice(final.Groups, func(i, j int) bool { return final.Groups[i].Group < final.Groups[j].Group })
		}
		return resp, err
	}
}

func pick(list []string, idx []int) []string {
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = list[j]
	}
	return out
}
