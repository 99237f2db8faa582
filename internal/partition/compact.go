package partition

import (
	"time"

	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/producer"
)

// Compact runs one log compaction pass (cleanup.policy=compact); see
// wlog.Log.Compact. Offsets, the high watermark and the producer state
// are unaffected: compaction keeps every batch's offsets and every batch
// of an idempotent producer. Transactions below the last stable offset
// are compacted by their outcome, taken from the producer state together
// with that offset, so the two agree: a transaction whose data lies below
// it has had its marker applied, and an abort is in the aborted list.
func (p *Partition) Compact(now time.Time, deleteRetentionMs int64) (wlog.CompactStats, error) {
	p.mu.Lock()
	stable := p.LastStableOffset()
	aborted := p.producers.Aborted(p.log.StartOffset())
	p.mu.Unlock()
	return p.log.Compact(now, deleteRetentionMs, txnOutcomes(stable, aborted))
}

// txnOutcomes answers a compaction pass's questions from a snapshot of
// the aborted transactions.
func txnOutcomes(stable int64, aborted []producer.AbortedTxn) wlog.TxnOutcomes {
	byProducer := make(map[int64][]producer.AbortedTxn)
	for _, a := range aborted {
		byProducer[a.ProducerID] = append(byProducer[a.ProducerID], a)
	}
	return wlog.TxnOutcomes{
		StableOffset: stable,
		Aborted: func(producerID, offset int64) bool {
			for _, a := range byProducer[producerID] {
				if a.FirstOffset <= offset && offset <= a.LastOffset {
					return true
				}
			}
			return false
		},
	}
}
