package partition

import (
	"fmt"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/producer"
)

// snapshotIntervalBytes is how much is appended between producer state
// snapshots: what a restart after a crash replays at most (besides the
// active segment's share before the first snapshot).
const snapshotIntervalBytes = 64 << 20

// loadProducers rebuilds the producer state: the newest snapshot between
// the log start and the recovered log end, then every batch after it. Replayed producers
// count as seen at nowMs, so a restart never expires a producer early.
func (p *Partition) loadProducers(nowMs int64) error {
	start, end := p.log.StartOffset(), p.log.EndOffset()
	snap, err := producer.LoadSnapshot(p.fs, p.dir, start, end)
	if err != nil {
		return err
	}
	p.producers.Restore(snap.Entries, snap.Aborted)
	p.producers.RestoreMarkers(snap.Markers)
	p.producers.TruncateHead(start)
	defer p.updateFirstUnstableLocked()
	from := max(snap.Offset, start)
	for from < end {
		data, err := p.log.Read(from, end, 1<<20)
		if err != nil {
			return fmt.Errorf("replay from %d: %w", from, err)
		}
		if len(data) == 0 {
			return fmt.Errorf("replay from %d: log returned nothing before its end %d", from, end)
		}
		for len(data) > 0 {
			h, err := batch.ParseHeader(data)
			if err != nil {
				return fmt.Errorf("replay at %d: %w", from, err)
			}
			switch {
			case h.Control():
				commit, err := batch.IsCommitMarker(data[:h.Size()])
				if err != nil {
					return fmt.Errorf("replay marker at %d: %w", h.BaseOffset, err)
				}
				p.producers.ApplyMarker(h.ProducerID, h.ProducerEpoch, commit, h.BaseOffset, nowMs)
			case h.Idempotent():
				p.producers.Update(h, h.BaseOffset, nowMs)
			}
			from = h.NextOffset()
			data = data[h.Size():]
		}
	}
	return nil
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
