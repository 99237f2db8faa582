package broker

// FindCoordinator v0-6. v0 asks for a group's coordinator; v1+ names the
// key type (0 group, 1 transaction); v4+ asks for several keys at once and
// answers per key. Every coordinator is this node. The first lookup of a
// group creates __consumer_offsets (clients retry while it answers
// COORDINATOR_NOT_AVAILABLE); the first lookup of a transactional id
// creates __transaction_state. Other key types (share groups) are
// INVALID_REQUEST.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Coordinator key types.
const (
	coordinatorGroup       = 0
	coordinatorTransaction = 1
)

func (b *Broker) handleFindCoordinator(req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		rc := kmsg.NewFindCoordinatorResponseCoordinator()
		rc.Key = key
		if err := b.findCoordinator(req.CoordinatorType, key); err != nil {
			rc.NodeID, rc.Port = -1, -1
			rc.ErrorCode, rc.ErrorMessage = errCode(err), errMessage(err)
		} else {
			rc.NodeID, rc.Host, rc.Port = b.cfg.NodeID, b.advHost, b.advPort
		}
		resp.Coordinators = append(resp.Coordinators, rc)
	}
	if req.Version < 4 {
		rc := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage = rc.ErrorCode, rc.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = rc.NodeID, rc.Host, rc.Port
		resp.Coordinators = nil
	}
	return resp
}

// findCoordinator reports whether this node can coordinate key now.
func (b *Broker) findCoordinator(keyType int8, key string) error {
	switch keyType {
	case coordinatorGroup:
		if _, err := b.groups.shardFor(key, true); err != nil {
			b.logger.Error("group coordinator unavailable", "err", err)
			return wrap(kerr.CoordinatorNotAvailable, err)
		}
		return nil
	case coordinatorTransaction:
		if _, err := b.txns.coordinator(true); err != nil {
			b.logger.Error("transaction coordinator unavailable", "err", err)
			return wrap(kerr.CoordinatorNotAvailable, err)
		}
		return nil
	}
	return kerr.InvalidRequest
}
