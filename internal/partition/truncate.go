package partition

// Truncation of a follower whose log diverged from its leader's (KIP-101,
// KIP-279): the follower learns from the leader where its last epoch ends
// and cuts its log there before it fetches again.

import (
	"fmt"
	"slices"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/producer"
)

// TruncateTo removes every batch holding an offset at or above offset
// and returns the new log end: offset itself, or the base offset of the
// batch that holds it when that batch begins below it (a batch is never
// cut in two, so the follower fetches it again whole). An offset at or
// past the log end changes nothing.
//
// Afterwards the log, the epoch checkpoint and the producer snapshots say
// the same: snapshots above the cut are deleted before the log is cut (so
// a reopen can never load the state of batches the log lost), the epochs
// starting at or past the cut are dropped and the checkpoint rewritten,
// and the producer state, the aborted transactions and the last stable
// offset are rebuilt as a replay of the remaining log gives them. The
// high watermark drops to the new log end if it was above it; everything
// below the cut stays as it was. A crash at any point leaves a log that
// reopens as a prefix of the one before, its producer state a replay of
// it.
//
// Only a follower truncates (ErrNotFollower); an offset below the log
// start is wlog.ErrOffsetOutOfRange. It holds the partition's lock across
// the file work, which excludes only the follower's own appends and
// producer-state readers; it is rare. An error other than a refusal
// leaves the partition to be closed and reopened.
func (p *Partition) TruncateTo(offset int64) (int64, error) {
	// No producer snapshot may be taken of the state before the cut and
	// written after it.
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	start, end := p.log.StartOffset(), p.log.EndOffset()
	switch {
	case p.role != roleFollower:
		return end, ErrNotFollower
	case offset >= end:
		// Nothing to cut but an epoch this replica started at its log
		// end and wrote nothing in: no other replica knows it, and
		// naming it as the last fetched epoch would diverge for ever.
		if n := len(p.epochs); n > 0 && p.epochs[n-1].start >= end {
			p.epochs.truncateFromEnd(end)
			if err := wlog.WriteFileDurably(p.fs, p.dir, EpochCheckpointFile, p.epochs.encode()); err != nil {
				return end, err
			}
		}
		return end, nil
	case offset < start:
		return end, fmt.Errorf("%w: cannot truncate to %d, the log holds [%d, %d)", wlog.ErrOffsetOutOfRange, offset, start, end)
	}
	cut, err := p.batchStart(offset, end)
	if err != nil {
		return end, err
	}
	if cut < start {
		return end, fmt.Errorf("%w: the batch holding %d begins at %d, below the log start %d", wlog.ErrOffsetOutOfRange, offset, cut, start)
	}

	// From here on the high watermark cannot rise above the cut: the
	// flusher's next round meets a lowered leader high watermark. The
	// transactions ending above the cut keep holding the last stable
	// offset until the replay below says what is open.
	p.wmu.Lock()
	p.leaderHW = min(p.leaderHW, cut)
	if p.hw.Load() > cut {
		p.hw.Store(cut)
	}
	p.wmu.Unlock()

	if err := producer.DeleteSnapshotsAbove(p.fs, p.dir, cut); err != nil {
		return end, fmt.Errorf("truncate to %d: %w", cut, err)
	}
	if err := p.log.Truncate(cut); err != nil {
		return end, fmt.Errorf("truncate to %d: %w", cut, err)
	}
	n := len(p.epochs)
	p.epochs.truncateFromEnd(cut)
	if len(p.epochs) != n {
		if err := wlog.WriteFileDurably(p.fs, p.dir, EpochCheckpointFile, p.epochs.encode()); err != nil {
			return cut, fmt.Errorf("truncate to %d: leader epochs: %w", cut, err)
		}
	}
	p.sinceSnapshot = 0
	if err := p.loadProducers(p.now().UnixMilli()); err != nil {
		return cut, fmt.Errorf("truncate to %d: producer state: %w", cut, err)
	}
	p.wmu.Lock()
	p.flushed = min(p.flushed, cut)
	p.ending = slices.DeleteFunc(p.ending, func(t endingTxn) bool { return t.markerEnd > cut })
	p.publishFirstUnstableLocked()
	p.wmu.Unlock()
	return cut, nil
}

// batchStart is the base offset of the batch holding offset, which lies
// in [log start, end).
func (p *Partition) batchStart(offset, end int64) (int64, error) {
	data, err := p.log.Read(offset, end, 1)
	if err != nil {
		return 0, err
	}
	h, err := batch.ParseHeader(data)
	if err != nil {
		return 0, fmt.Errorf("truncate: batch at %d: %w", offset, err)
	}
	return h.BaseOffset, nil
}

// TruncateFullyAndStartAt empties the log of a follower whose log ends
// below its leader's log start and starts it again at offset, the
// leader's log start (Kafka's name): the producer snapshots go first,
// then the log (wlog.Log.TruncateFullyAndStartAt), then the epochs. The
// producer state, the aborted transactions and the ending transactions
// are empty, and the high watermark is offset: nothing below it is left
// to show. A crash part way leaves a prefix of the old log or the empty
// log at offset. Only a follower does it (ErrNotFollower).
func (p *Partition) TruncateFullyAndStartAt(offset int64) error {
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != roleFollower {
		return ErrNotFollower
	}
	if err := producer.DeleteSnapshotsAbove(p.fs, p.dir, -1); err != nil {
		return fmt.Errorf("truncate fully to %d: %w", offset, err)
	}
	if err := p.log.TruncateFullyAndStartAt(offset); err != nil {
		return fmt.Errorf("truncate fully to %d: %w", offset, err)
	}
	p.epochs = nil
	if err := wlog.WriteFileDurably(p.fs, p.dir, EpochCheckpointFile, p.epochs.encode()); err != nil {
		return fmt.Errorf("truncate fully to %d: leader epochs: %w", offset, err)
	}
	p.producers = producer.NewState()
	p.sinceSnapshot = 0
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.ending = nil
	p.openFirst = noOpenTxn
	p.flushed, p.leaderHW = offset, offset
	p.hw.Store(offset)
	p.publishFirstUnstableLocked()
	return nil
}
