package partition

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/producer"
)

// AppendMarker writes the COMMIT or ABORT marker of producer pid's
// transaction at epoch and returns the offset after it; WaitDurable waits
// for it. A marker older than the producer's epoch is refused with
// INVALID_PRODUCER_EPOCH.
func (p *Partition) AppendMarker(pid int64, epoch int16, commit bool, coordinatorEpoch int32) (int64, error) {
	end, _, err := p.AppendTxnMarker(pid, epoch, commit, coordinatorEpoch, 0)
	return end, err
}

// AppendTxnMarker is AppendMarker for a marker its coordinator numbered
// with seq, the transaction's number among its id's transactions (0: not
// numbered, as from a tool). A marker numbered at or below the last one
// applied here for the producer is a copy of one already applied: a
// coordinator that lost an answer sends its markers again, and the first
// copy may reach this partition late, after the producer's next
// transaction has begun here. Such a copy is not written (applied is
// false) and the returned offset is the applied marker's, so waiting for
// it waits for that one. The numbers applied are kept with the producer
// state (producer.State.NoteMarker): in snapshots, so a reopen keeps
// them, and for producer.id.expiration.ms whatever happens to the
// producer's entry. After a crash they are those of the last snapshot; a
// late copy does not outlive the crash of the node it was sent to, which
// drops the connection it came on.
func (p *Partition) AppendTxnMarker(pid int64, epoch int16, commit bool, coordinatorEpoch int32, seq int64) (end int64, applied bool, err error) {
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
	if p.role != roleLeader {
		p.mu.Unlock()
		return 0, false, ErrNotLeader
	}
	if err := p.producers.CheckMarker(pid, epoch); err != nil {
		p.mu.Unlock()
		return 0, false, err
	}
	if end, copy := p.producers.MarkerCopy(pid, seq); copy {
		p.mu.Unlock()
		return end, false, nil
	}
	batch.SetLeaderEpoch(b, p.leaderEpoch)
	base, err := p.log.Append(b)
	if err == nil {
		p.yield(AfterLogAppend)
		if first, ok := p.producers.OpenTxnFirstOffset(pid); ok {
			p.wmu.Lock()
			if base+1 > p.hw.Load() {
				p.ending = append(p.ending, endingTxn{first: first, markerEnd: base + 1})
			}
			p.wmu.Unlock()
		}
		p.producers.ApplyMarker(pid, epoch, commit, base, now)
		p.producers.NoteMarker(pid, seq, base+1, now)
		p.endVerificationsLocked(pid)
		p.updateFirstUnstableLocked()
		p.sinceSnapshot += int64(len(b))
	}
	p.mu.Unlock()
	if err != nil {
		return 0, false, err
	}
	p.kickFlusher()
	p.notifyEnd()
	return base + 1, true, nil
}

// updateFirstUnstableLocked republishes the first unstable offset after
// the producer state changed. p.mu is held (or the partition is not yet
// shared).
func (p *Partition) updateFirstUnstableLocked() {
	open := int64(noOpenTxn)
	if off, ok := p.producers.FirstUnstableOffset(); ok {
		open = off
	}
	p.wmu.Lock()
	p.openFirst = open
	p.publishFirstUnstableLocked()
	p.wmu.Unlock()
}

// publishFirstUnstableLocked publishes the first offset of the earliest
// transaction open or ending. p.wmu is held.
func (p *Partition) publishFirstUnstableLocked() {
	first := p.openFirst
	for _, t := range p.ending {
		first = min(first, t.first)
	}
	p.firstUnstable.Store(first)
}

// ReadCommittedInto is ReadInto for a read_committed fetch: the batches
// from offset up to limit (the last stable offset) and the aborted
// transactions the client needs to drop those of them that were aborted.
// The two describe the same log: if the log start passed offset while
// the batches were read, the aborted transactions below it may be
// forgotten already, and the read is answered ErrOffsetOutOfRange, as a
// fetch below the log start is.
func (p *Partition) ReadCommittedInto(buf []byte, offset, limit int64, maxBytes int) ([]byte, []kmsg.FetchResponseTopicPartitionAbortedTransaction, error) {
	data, err := p.log.ReadInto(buf, offset, limit, maxBytes)
	if err != nil {
		return data, nil, err
	}
	p.mu.Lock()
	aborted := p.producers.AbortedIn(offset, limit)
	start := p.log.StartOffset()
	p.mu.Unlock()
	if start > offset {
		return data[:0], nil, wlog.ErrOffsetOutOfRange
	}
	return data, abortedList(aborted), nil
}

// AbortedTransactions lists the aborted transactions a read_committed
// fetch of [from, to) must be told about.
func (p *Partition) AbortedTransactions(from, to int64) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	p.mu.Lock()
	aborted := p.producers.AbortedIn(from, to)
	p.mu.Unlock()
	return abortedList(aborted)
}

func abortedList(aborted []producer.AbortedTxn) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, len(aborted))
	for i, a := range aborted {
		out[i] = kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset}
	}
	return out
}
