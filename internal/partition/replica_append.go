package partition

import (
	"errors"
	"fmt"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
)

// ErrUnexpectedOffset refuses replica data that does not start at the
// log end: a gap or an overlap, never written.
var ErrUnexpectedOffset = errors.New("replica data does not start at the log end")

// AppendReplica writes batches a follower fetched from its leader, byte
// for byte at the offsets they carry, and returns the new log end. The
// first batch must start at the log end and each next one where the
// previous ends; every batch must be whole with a matching CRC and a
// leader epoch no older than the last in the log. Anything else is an
// error and nothing of data is written (a failed write to the disk may
// leave the batches before it written; the returned end says where the log
// ends). Nothing is checked against the
// producer state: the leader already decided, and the follower takes the
// producer state, the transactions and the last stable offset from the
// batches as a replay of its log does. A new leader epoch's start is made
// durable before its first batch (epochs.go). The batches become durable
// as the flusher syncs them; the follower then fetches from the new log
// end, which is how the leader learns they are durable. nowMs is the
// broker's clock, for the producers' last-seen times.
func (p *Partition) AppendReplica(data []byte, nowMs int64) (int64, error) {
	first, err := checkReplicaData(data)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	end, err := p.appendReplicaLocked(data, first, nowMs)
	p.mu.Unlock()
	if end > first.BaseOffset {
		p.kickFlusher()
		p.notifyEnd()
	}
	return end, err
}

// checkReplicaData checks that data is a run of whole, intact batches at
// consecutive offsets with non-decreasing leader epochs, whose markers
// decode, and returns the first batch's header. It takes no lock: the CRCs
// are the costly part.
func checkReplicaData(data []byte) (batch.Header, error) {
	var first batch.Header
	if len(data) == 0 {
		return first, fmt.Errorf("%w: no batches", errReplicaBatch)
	}
	next, epoch := int64(-1), int32(-1)
	for rest := data; len(rest) > 0; {
		h, err := batch.ParseHeader(rest)
		if errors.Is(err, batch.ErrTruncated) {
			err = fmt.Errorf("%w: %v", batch.ErrCorrupt, err)
		}
		if err != nil {
			return first, fmt.Errorf("%w at %d: %w", errReplicaBatch, next, err)
		}
		raw := rest[:h.Size()]
		if err := batch.CheckCRC(raw, h); err != nil {
			return first, fmt.Errorf("%w at %d: %w", errReplicaBatch, h.BaseOffset, err)
		}
		switch {
		case h.LastOffsetDelta < 0 || h.BaseOffset < 0:
			return first, fmt.Errorf("%w at %d: %w: last offset delta %d", errReplicaBatch, h.BaseOffset, batch.ErrCorrupt, h.LastOffsetDelta)
		case next >= 0 && h.BaseOffset != next:
			return first, fmt.Errorf("%w: batch at %d follows one ending at %d", ErrUnexpectedOffset, h.BaseOffset, next)
		case h.LeaderEpoch < epoch || h.LeaderEpoch < 0:
			return first, fmt.Errorf("%w at %d: leader epoch %d after %d", errReplicaBatch, h.BaseOffset, h.LeaderEpoch, epoch)
		}
		if h.Control() {
			if _, err := batch.IsCommitMarker(raw); err != nil {
				return first, fmt.Errorf("%w: marker at %d: %w", errReplicaBatch, h.BaseOffset, err)
			}
		}
		if next < 0 {
			first = h
		}
		next, epoch = h.NextOffset(), h.LeaderEpoch
		rest = rest[h.Size():]
	}
	return first, nil
}

// appendReplicaLocked is AppendReplica's work under p.mu, on data
// checkReplicaData passed; it returns the log end.
func (p *Partition) appendReplicaLocked(data []byte, first batch.Header, nowMs int64) (int64, error) {
	end := p.log.EndOffset()
	if p.role != roleFollower {
		return end, ErrNotFollower
	}
	if first.BaseOffset != end {
		return end, fmt.Errorf("%w: data starts at %d, the log ends at %d", ErrUnexpectedOffset, first.BaseOffset, end)
	}
	// An epoch the log holds no batch of (one this replica started as
	// leader and wrote nothing in) says nothing of the leader's log; the
	// file must not keep it either, or a batch of an older epoch written
	// from there would be taken for its at the next open.
	n := len(p.epochs)
	p.epochs.truncateFromEnd(end)
	if len(p.epochs) != n {
		if err := wlog.WriteFileDurably(p.fs, p.dir, EpochCheckpointFile, p.epochs.encode()); err != nil {
			return end, err
		}
	}
	if first.LeaderEpoch < p.epochs.latest() {
		return end, fmt.Errorf("%w at %d: leader epoch %d older than the log's %d", errReplicaBatch, end, first.LeaderEpoch, p.epochs.latest())
	}
	// The last stable offset must not pass a transaction opened by these
	// batches while they are written (the flusher moves the high
	// watermark without p.mu): hold it at the first transactional batch
	// until the producer state below says exactly where it stands.
	if txn := firstTransactional(data); txn >= 0 {
		p.wmu.Lock()
		p.openFirst = min(p.openFirst, txn)
		p.publishFirstUnstableLocked()
		p.wmu.Unlock()
	}
	defer p.updateFirstUnstableLocked()
	for rest := data; len(rest) > 0; {
		h, _ := batch.ParseHeader(rest) // checked
		raw := rest[:h.Size()]
		rest = rest[h.Size():]
		if err := p.startEpochLocked(h.LeaderEpoch); err != nil {
			return p.log.EndOffset(), err
		}
		if _, err := p.log.Append(raw); err != nil {
			return p.log.EndOffset(), err
		}
		t, ended, err := p.replayBatchLocked(h, raw, nowMs)
		if err != nil {
			return p.log.EndOffset(), err // checked: cannot happen
		}
		if ended {
			p.holdEndingLocked(t)
		}
		p.sinceSnapshot += int64(len(raw))
	}
	return p.log.EndOffset(), nil
}

// firstTransactional is the base offset of the first transactional data
// batch in data, or -1.
func firstTransactional(data []byte) int64 {
	for len(data) > 0 {
		h, _ := batch.ParseHeader(data)
		if h.Transactional() && !h.Control() {
			return h.BaseOffset
		}
		data = data[h.Size():]
	}
	return -1
}
