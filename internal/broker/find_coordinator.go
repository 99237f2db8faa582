package broker

// FindCoordinator v0-6. v0 asks for a group's coordinator; v1+ names the
// key type (0 group, 1 transaction); v4+ asks for several keys at once and
// answers per key. Alone, every coordinator is this node. The first
// lookup of a group creates __consumer_offsets (clients retry while it
// answers COORDINATOR_NOT_AVAILABLE); the first lookup of a transactional
// id creates __transaction_state. Other key types (share groups) are
// INVALID_REQUEST.
//
// In a cluster the coordinator of a key is the broker the image names
// leader of the key's internal partition (coordinatorNode), so every
// client of a group or transactional id is sent to the same node, whichever
// broker it asks; that node runs the partition's coordinator shard.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/server"
)

// Coordinator key types.
const (
	coordinatorGroup       = 0
	coordinatorTransaction = 1
)

func (b *Broker) handleFindCoordinator(c *server.Conn, req *kmsg.FindCoordinatorRequest) kmsg.Response {
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
		} else if id, host, port, ok := b.coordinatorEndpoint(req.CoordinatorType, key, c.Listener); ok {
			rc.NodeID, rc.Host, rc.Port = id, host, port
		} else {
			rc.NodeID, rc.Port = -1, -1
			rc.ErrorCode = kerr.CoordinatorNotAvailable.Code
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

// findCoordinator creates the key's internal topic if it does not exist
// yet and, when this node coordinates the key, waits briefly for its
// shard to load, so a client sent here is served at once.
func (b *Broker) findCoordinator(keyType int8, key string) error {
	var err error
	switch keyType {
	case coordinatorGroup:
		_, err = b.groups.set.get(key, true)
	case coordinatorTransaction:
		_, err = b.txns.set.get(key, true)
	default:
		return kerr.InvalidRequest
	}
	if err != nil && !errors.Is(err, kerr.NotCoordinator) {
		b.logCoordinatorError("coordinator", err)
		return wrap(kerr.CoordinatorNotAvailable, err)
	}
	return nil
}

// coordinatorNode is, in a cluster, the registered broker leading key's
// partition of its internal topic, if the image has both.
func (b *Broker) coordinatorNode(keyType int8, key string) (metadata.Broker, bool) {
	topic := group.OffsetsTopic
	if keyType == coordinatorTransaction {
		topic = TxnStateTopic
	}
	var br metadata.Broker
	var ok bool
	b.ctrl.View(func(im *metadata.Image) {
		t := im.Topics[topic]
		if t == nil || len(t.Partitions) == 0 {
			return
		}
		leader := t.Partitions[group.PartitionFor(key, int32(len(t.Partitions)))].Leader
		br, ok = im.Brokers[leader]
	})
	return br, ok
}

// coordinatorEndpoint is key's coordinator and where clients of listener
// reach it: this node when it runs alone.
func (b *Broker) coordinatorEndpoint(keyType int8, key, listener string) (id int32, host string, port int32, ok bool) {
	br := b.self()
	if b.ctrl.Clustered() {
		if br, ok = b.coordinatorNode(keyType, key); !ok {
			return -1, "", -1, false
		}
	}
	host, port, ok = br.Endpoint(listener)
	return br.NodeID, host, port, ok
}
