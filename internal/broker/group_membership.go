package broker

// JoinGroup v0-9, SyncGroup v0-5, Heartbeat v0-4 and LeaveGroup v0-5: the
// classic group membership protocol, served by internal/group, whose files
// say what each version adds. A JoinGroup parks until its rebalance
// completes and a follower's SyncGroup until the leader's assignment is
// durable, so their replies wait; requests behind them on the same
// connection wait too, as clients expect. JoinGroup creates
// __consumer_offsets on first use; before it exists the others find no
// group.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/server"
)

func (b *Broker) handleJoinGroup(ctx context.Context, c *server.Conn, req *kmsg.JoinGroupRequest) server.Reply {
	return b.stepGroup(ctx, c, req.Group, true, req)
}

func (b *Broker) handleSyncGroup(ctx context.Context, c *server.Conn, req *kmsg.SyncGroupRequest) server.Reply {
	return b.stepGroup(ctx, c, req.Group, false, req)
}

func (b *Broker) handleHeartbeat(ctx context.Context, c *server.Conn, req *kmsg.HeartbeatRequest) server.Reply {
	return b.stepGroup(ctx, c, req.Group, false, req)
}

func (b *Broker) handleLeaveGroup(ctx context.Context, c *server.Conn, req *kmsg.LeaveGroupRequest) server.Reply {
	return b.stepGroup(ctx, c, req.Group, false, req)
}
