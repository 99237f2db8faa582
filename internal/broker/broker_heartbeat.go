package broker

// BrokerHeartbeat v0-2 (KIP-631, key 63). Kafka serves it on the
// controller's listener; a Weir node is broker and controller at once and
// serves it on its Kafka listener. Only the active controller answers:
// any other node says NOT_CONTROLLER, and a heartbeat of a registration
// the image does not hold is STALE_BROKER_EPOCH. The offline (v1) and
// cordoned (v2) log directories are ignored: a node has one.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/controller"
)

func (b *Broker) handleBrokerHeartbeat(req *kmsg.BrokerHeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.BrokerHeartbeatResponse)
	res, err := b.ctrl.BrokerHeartbeat(controller.Heartbeat{
		NodeID:        req.BrokerID,
		Epoch:         req.BrokerEpoch,
		AppliedOffset: req.CurrentMetadataOffset,
		WantFence:     req.WantFence,
		WantShutdown:  req.WantShutdown,
	})
	if err != nil {
		resp.ErrorCode = errCode(err)
		resp.IsFenced = true
		return resp
	}
	resp.IsCaughtUp, resp.IsFenced, resp.ShouldShutdown = res.CaughtUp, res.Fenced, res.ShouldShutdown
	return resp
}
