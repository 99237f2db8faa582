package eos

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A standby replica (Config.Standby; num.standby.replicas in Kafka
// Streams) is a warm copy of a task this worker does not own: its local
// store follows the task's changelog partition, read_committed, so that
// when the group moves the partition here the restore reads only the
// changes since, not the whole changelog. A standby store only ever
// applies committed changelog records, in order, so it is never ahead of
// the committed state, the invariant an active store keeps; it answers
// no query. This worker keeps a standby of every partition it does not
// own: with two workers that is one standby per task.

// standbys is the processing loop's tail of the changelog partitions it
// does not own. Only the processing loop touches it.
type standbys struct {
	cl    *kgo.Client
	parts map[int32]bool // partitions the client consumes
}

// tendStandbys moves the standby client's partitions to those this
// worker does not own, then applies what the client has buffered. It
// does not wait for records: the processing loop calls it every turn.
func (p *Processor) tendStandbys(ctx context.Context) error {
	if p.standby == nil {
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(p.cfg.Brokers...),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.KeepControlRecords(),
		}, p.cfg.ClientOpts...)...)
		if err != nil {
			return fmt.Errorf("eos: standby client: %w", err)
		}
		p.standby = &standbys{cl: cl, parts: map[int32]bool{}}
	}
	sb := p.standby
	want := map[int32]bool{}
	p.mu.RLock()
	for part := int32(0); part < p.partitions; part++ {
		if !p.owned[part] && !p.toOpen[part] {
			want[part] = true
		}
	}
	p.mu.RUnlock()
	for part := range sb.parts {
		if !want[part] {
			sb.cl.RemoveConsumePartitions(map[string][]int32{p.changelog: {part}})
			delete(sb.parts, part)
		}
	}
	add := map[int32]kgo.Offset{}
	for part := range want {
		if sb.parts[part] {
			continue
		}
		t, err := p.standbyTask(part)
		if err != nil {
			return err
		}
		add[part] = kgo.NewOffset().At(t.applied)
		sb.parts[part] = true
	}
	if len(add) > 0 {
		sb.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{p.changelog: add})
	}
	// Take what is buffered, waiting next to nothing (a cancelled
	// context would return before even taking that). Fetch errors are
	// left to the client's retries: a standby is best effort, and the
	// restore on assignment reads whatever it missed.
	pctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	fs := sb.cl.PollFetches(pctx)
	cancel()
	type batch struct {
		changes map[string]change
		next    int64
	}
	batches := map[int32]*batch{}
	fs.EachRecord(func(r *kgo.Record) {
		if !sb.parts[r.Partition] {
			return // fetched before the partition was dropped
		}
		b := batches[r.Partition]
		if b == nil {
			b = &batch{changes: map[string]change{}}
			batches[r.Partition] = b
		}
		b.next = r.Offset + 1
		if !r.Attrs.IsControl() {
			b.changes[string(r.Key)] = change{value: r.Value}
		}
	})
	for part, b := range batches {
		p.mu.RLock()
		t := p.tasks[part]
		active := p.owned[part] || p.toOpen[part]
		p.mu.RUnlock()
		if t == nil || active || b.next <= t.applied {
			// Assigned meanwhile: its restore on assignment reads from
			// what the store has applied.
			continue
		}
		if err := t.apply(b.changes, b.next); err != nil {
			return err
		}
	}
	return nil
}

// standbyTask opens partition part's store for a standby, emptied if it
// applied another changelog than the current one.
func (p *Processor) standbyTask(part int32) (*task, error) {
	p.mu.RLock()
	t := p.tasks[part]
	p.mu.RUnlock()
	if t == nil {
		var err error
		if t, err = openTask(appStateDir(p.cfg.StateDir, p.cfg.Group), p.cfg.Store, part); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.tasks[part] = t
		p.mu.Unlock()
	}
	if t.logID != p.changelogID {
		if err := t.wipe(); err != nil {
			return nil, fmt.Errorf("eos: wiping %s: %w", t.path, err)
		}
		t.logID = p.changelogID
	}
	return t, nil
}
