package partition

import (
	"fmt"
	"slices"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/producer"
)

// snapshotIntervalBytes is how much is appended between producer state
// snapshots: what a restart after a crash replays at most (besides the
// active segment's share before the first snapshot).
const snapshotIntervalBytes = 64 << 20

// loadProducers rebuilds the producer state from nothing: the newest
// snapshot between the log start and the log end, then every batch after
// it. A replayed marker above the high watermark holds the last stable
// offset as a newly written one does, and so do those the snapshot lists
// as not yet below the high watermark when it was taken (the others were
// on every in-sync replica then, and a replica that reopens with its high
// watermark below them need not hold the last stable offset for them). Replayed producers count as seen at nowMs, so a restart never
// expires a producer early. It runs at open and after a truncation, with
// p.mu held (or before the partition is shared).
func (p *Partition) loadProducers(nowMs int64) error {
	start, end := p.log.StartOffset(), p.log.EndOffset()
	snap, err := producer.LoadSnapshot(p.fs, p.dir, start, end)
	if err != nil {
		return err
	}
	p.producers = producer.NewState()
	p.producers.Restore(snap.Entries, snap.Aborted)
	p.producers.RestoreMarkers(snap.Markers)
	p.producers.TruncateHead(start)
	for _, u := range snap.Unreplicated {
		p.holdEndingLocked(endingTxn{first: u.FirstOffset, markerEnd: u.MarkerEnd})
	}
	defer p.updateFirstUnstableLocked()
	// Only a marker's body matters to the producer state; everything else
	// is in the batch headers, so the replay walks those and reads the
	// log itself only at markers (see wlog.Log.ReadHeaders).
	from := max(snap.Offset, start)
	if from >= end {
		return nil
	}
	err = p.log.ReadHeaders(from, end, func(h batch.Header) error {
		var raw []byte
		if h.Control() {
			data, err := p.log.Read(h.BaseOffset, h.NextOffset(), 1)
			if err != nil {
				return fmt.Errorf("replay marker at %d: %w", h.BaseOffset, err)
			}
			if len(data) < h.Size() {
				return fmt.Errorf("replay marker at %d: %w: %d bytes of %d", h.BaseOffset, batch.ErrCorrupt, len(data), h.Size())
			}
			raw = data[:h.Size()]
		}
		t, ended, err := p.replayBatchLocked(h, raw, nowMs)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if ended {
			p.holdEndingLocked(t)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay from %d: %w", from, err)
	}
	return nil
}

// holdEndingLocked lists a transaction whose marker is in the log as
// ending until the high watermark passes the marker, once. p.mu is held.
func (p *Partition) holdEndingLocked(t endingTxn) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if t.markerEnd > p.hw.Load() && !slices.Contains(p.ending, t) {
		p.ending = append(p.ending, t)
	}
}

// replayBatchLocked applies one batch of the log to the producer state,
// as a replay of the log does; a follower applies what it copies from the
// leader the same way. For a marker that ends a transaction with data in
// the partition it returns that transaction's span (ended), which holds
// the last stable offset until the marker is below the high watermark.
// p.mu is held.
func (p *Partition) replayBatchLocked(h batch.Header, raw []byte, nowMs int64) (t endingTxn, ended bool, err error) {
	switch {
	case h.Control():
		commit, err := batch.IsCommitMarker(raw)
		if err != nil {
			return t, false, fmt.Errorf("marker at %d: %w", h.BaseOffset, err)
		}
		if first, ok := p.producers.OpenTxnFirstOffset(h.ProducerID); ok {
			t, ended = endingTxn{first: first, markerEnd: h.BaseOffset + 1}, true
		}
		p.producers.ApplyMarker(h.ProducerID, h.ProducerEpoch, commit, h.BaseOffset, nowMs)
	case h.Idempotent():
		p.producers.Update(h, h.BaseOffset, nowMs)
	}
	return t, ended, nil
}

func (p *Partition) snapshotDue() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sinceSnapshot >= p.opts.SnapshotIntervalBytes
}

// snapshotProducers writes the producer state as of the log end. The
// state and the end offset are taken together under the append lock, and
// the log is synced up to that end before the snapshot is written, so a
// snapshot never describes batches a crash could take back.
func (p *Partition) snapshotProducers() error {
	// One snapshot at a time (the flusher's and the one a move of the log
	// start writes share a file name when nothing was appended between),
	// each taken and written in the order they were asked for.
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	p.mu.Lock()
	snap := producer.Snapshot{
		Offset:  p.log.EndOffset(),
		Entries: p.producers.Entries(),
		Aborted: p.producers.Aborted(p.log.StartOffset()),
		Markers: p.producers.Markers(),
	}
	p.wmu.Lock()
	for _, t := range p.ending {
		snap.Unreplicated = append(snap.Unreplicated, producer.UnreplicatedTxn{FirstOffset: t.first, MarkerEnd: t.markerEnd})
	}
	p.wmu.Unlock()
	p.sinceSnapshot = 0
	p.mu.Unlock()
	if _, err := p.log.Sync(); err != nil {
		return err
	}
	return producer.WriteSnapshot(p.fs, p.dir, snap)
}

// Producers lists the producers this partition tracks.
func (p *Partition) Producers() []producer.Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.producers.Entries()
}

// ExpireProducers forgets producers idle for longer than expirationMs.
func (p *Partition) ExpireProducers(nowMs, expirationMs int64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.producers.Expire(nowMs, expirationMs)
}
