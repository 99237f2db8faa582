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

// producerIDPrefetch is how few ids may be left in the current block
// before the next one is reserved in the background (Kafka's
// ProducerIdManager does the same at 90 % used), so an InitProducerId
// seldom waits for the metadata quorum.
const producerIDPrefetch = producerIDBlockSize / 10

// producerIDs hands out ids from the current block. mu guards the fields
// and is never held across the reservation of a block, a round trip to
// the metadata quorum: requests wait on the reservation's done instead.
type producerIDs struct {
	mu        sync.Mutex
	next, end int64
	pending   *idBlock // the next block, being reserved or reserved
}

// idBlock is a block reservation: start and err are set before done is
// closed.
type idBlock struct {
	done  chan struct{}
	start int64
	err   error
}

// reserveLocked starts reserving the next block unless one is pending.
func (b *Broker) reserveLocked() *idBlock {
	if b.pids.pending == nil {
		blk := &idBlock{done: make(chan struct{})}
		b.pids.pending = blk
		go func() {
			blk.start, blk.err = b.ctrl.AllocateProducerIDs(producerIDBlockSize)
			close(blk.done)
		}()
	}
	return b.pids.pending
}

func (b *Broker) nextProducerID() (int64, error) {
	for {
		b.pids.mu.Lock()
		if b.pids.next < b.pids.end {
			id := b.pids.next
			b.pids.next++
			if b.pids.end-b.pids.next <= producerIDPrefetch {
				b.reserveLocked()
			}
			b.pids.mu.Unlock()
			return id, nil
		}
		blk := b.reserveLocked()
		b.pids.mu.Unlock()
		<-blk.done
		b.pids.mu.Lock()
		if b.pids.pending == blk {
			// The first to see it done installs it (or reports its
			// failure; the next call reserves again).
			b.pids.pending = nil
			if blk.err != nil {
				b.pids.mu.Unlock()
				return 0, blk.err
			}
			b.pids.next, b.pids.end = blk.start, blk.start+producerIDBlockSize
		}
		b.pids.mu.Unlock()
	}
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
