package broker

// InitProducerId v0-4 for idempotent producers (no transactional id): each
// call hands out a fresh producer id at epoch 0, as Kafka does for
// non-transactional producers, including a KIP-360 re-initialisation that
// presents the previous id and epoch (v3+). Ids come from blocks reserved
// in the metadata log (KIP-730), so a restart never hands one out twice.
// With a transactional id the transaction coordinator answers (txn.go).

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// producerIDBlockSize is how many ids one metadata record reserves.
const producerIDBlockSize = 1000

// producerIDs hands out ids from the current block.
type producerIDs struct {
	mu        sync.Mutex
	next, end int64
}

func (b *Broker) nextProducerID() (int64, error) {
	b.pids.mu.Lock()
	defer b.pids.mu.Unlock()
	if b.pids.next == b.pids.end {
		start, err := b.ctrl.AllocateProducerIDs(producerIDBlockSize)
		if err != nil {
			return 0, err
		}
		b.pids.next, b.pids.end = start, start+producerIDBlockSize
	}
	id := b.pids.next
	b.pids.next++
	return id, nil
}

func (b *Broker) handleInitProducerID(req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		return b.handleInitTransactionalProducerID(req, resp)
	}
	id, err := b.nextProducerID()
	if err != nil {
		// Retriable, as Kafka answers while no block is at hand
		// (KIP-730): the quorum may be electing a leader.
		b.logger.Warn("allocate producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
