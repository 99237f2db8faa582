package partition

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
)

// AppendMarker writes the COMMIT or ABORT marker of producer pid's
// transaction at epoch and returns the offset after it; WaitDurable waits
// for it. A marker older than the producer's epoch is refused with
// INVALID_PRODUCER_EPOCH.
func (p *Partition) AppendMarker(pid int64, epoch int16, commit bool, coordinatorEpoch int32) (int64, error) {
	key := kmsg.NewControlRecordKey()
	key.Type = batch.ControlAbort
	if commit {
		key.Type = batch.ControlCommit
	}
	value := kmsg.NewEndTxnMarker()
	value.CoordinatorEpoch = coordinatorEpoch
	now := p.now().UnixMilli()
	b := batch.Build(batch.Spec{
		Attributes: batch.AttrControl | batch.AttrTransactional,
		Timestamp:  now, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: -1,
	}, []batch.Record{{Key: key.AppendTo(nil), Value: value.AppendTo(nil)}})

	p.mu.Lock()
	if err := p.producers.CheckMarker(pid, epoch); err != nil {
		p.mu.Unlock()
		return 0, err
	}
	batch.SetLeaderEpoch(b, p.leaderEpoch)
	base, err := p.log.Append(b)
	if err == nil {
		p.yield(AfterLogAppend)
		p.producers.ApplyMarker(pid, epoch, commit, base, now)
		p.endVerificationsLocked(pid)
		p.updateFirstUnstableLocked()
		p.sinceSnapshot += int64(len(b))
	}
	p.mu.Unlock()
	if err != nil {
		return 0, err
	}
	p.kickFlusher()
	return base + 1, nil
}

// updateFirstUnstableLocked republishes the first unstable offset after
// the producer state changed. p.mu is held (or the partition is not yet
// shared).
func (p *Partition) updateFirstUnstableLocked() {
	if off, ok := p.producers.FirstUnstableOffset(); ok {
		p.firstUnstable.Store(off)
		return
	}
	p.firstUnstable.Store(noOpenTxn)
}

// AbortedTransactions lists the aborted transactions a read_committed
// fetch of [from, to) must be told about.
func (p *Partition) AbortedTransactions(from, to int64) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	p.mu.Lock()
	aborted := p.producers.AbortedIn(from, to)
	p.mu.Unlock()
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, len(aborted))
	for i, a := range aborted {
		out[i] = kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset}
	}
	return out
}
