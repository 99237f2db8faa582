package partition

// Verification guards (KIP-890). The transaction coordinator confirms that
// a transactional write belongs to its producer's open transaction; that
// answer is stale once the transaction's marker reaches this partition.
// A guard, taken before the coordinator is asked and checked under the
// partition's lock when the write is appended, makes the check and the
// append one step as far as markers are concerned: a marker of the
// producer written in between invalidates the guard and the write is
// refused, instead of landing after the marker as the start of a
// transaction the coordinator knows nothing of (KAFKA-17754).

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/producer"
)

// ErrTxnEnded refuses a verified write whose transaction a marker ended
// after the verification began.
var ErrTxnEnded = fmt.Errorf("%w: the transaction ended after the write was verified", kerr.InvalidTxnState)

// TxnGuard is one verification of a transactional write, valid until a
// marker of its producer is written to the partition.
type TxnGuard struct {
	pid int64
}

// BeginVerification returns a guard for a transactional write of producer
// pid, to take before the coordinator is asked about the write. The
// caller ends it with EndVerification once the write is appended or
// given up.
func (p *Partition) BeginVerification(pid int64) *TxnGuard {
	g := &TxnGuard{pid: pid}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.guards == nil {
		p.guards = make(map[*TxnGuard]struct{})
	}
	p.guards[g] = struct{}{}
	return g
}

// EndVerification forgets g.
func (p *Partition) EndVerification(g *TxnGuard) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.guards, g)
}

// AppendVerified is Append for a transactional batch the coordinator
// confirmed after g was taken. It fails with ErrTxnEnded if a marker of
// the batch's producer was written since; a retry of a batch appended
// before the marker is still answered with its offsets.
func (p *Partition) AppendVerified(b []byte, h batch.Header, nowMs int64, g *TxnGuard) (int64, *producer.BatchMeta, error) {
	if g == nil || g.pid != h.ProducerID {
		return 0, nil, ErrTxnEnded
	}
	return p.append(b, h, nowMs, g)
}

// verifiedLocked reports whether g is still valid. p.mu is held.
func (p *Partition) verifiedLocked(g *TxnGuard) bool {
	_, ok := p.guards[g]
	return ok
}

// endVerificationsLocked invalidates every guard of producer pid: its
// marker is written. p.mu is held.
func (p *Partition) endVerificationsLocked(pid int64) {
	for g := range p.guards {
		if g.pid == pid {
			delete(p.guards, g)
		}
	}
}
