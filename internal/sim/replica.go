package sim

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
	"github.com/weir-broker/weir/internal/partition"
)

// The follower of a replicated run: replica 1, on a machine of its own
// (its file system never loses power). It fetches as a broker's replica
// fetcher does: it fsyncs what it has, asks the leader from its log end
// with the epoch of its last batch, truncates where the leader says its
// log diverged, and otherwise appends what the leader's log holds from
// there (up to the leader's log end, durable there or not) and takes the
// leader's high watermark.

const followerDir = "/f"

// followerID and leaderID are the replicas' broker ids.
const (
	leaderID   = 0
	followerID = 1
)

func (r *runner) followerOptions() partition.Options {
	return partition.Options{ManualFlush: true, SnapshotIntervalBytes: 500, ReplicaID: followerID, Follower: true}
}

func (r *runner) followerConfig(fs *logtest.MemFS) wlog.Config {
	cfg := r.config()
	cfg.FS = fs
	return cfg
}

// openFollower opens the follower of a replicated run.
func (r *runner) openFollower() error {
	if !r.replicated {
		return nil
	}
	r.ffs = logtest.NewMemFS()
	r.ffs.SetClock(r.now)
	f, err := partition.OpenWith("t", 0, followerDir, r.followerConfig(r.ffs), 0, nil, r.followerOptions())
	if err != nil {
		return r.failf("open follower: %v", err)
	}
	r.f = f
	return nil
}

func (r *runner) closeFollower() {
	if r.f != nil {
		r.f.Close()
	}
}

// fetchBytes is how much one fetch of a reads at most.
func fetchBytes(a action) int { return 100 + int(a.keep%700) }

// fetch runs one follower fetch of at most maxBytes.
func (r *runner) fetch(maxBytes int) error {
	f := r.f
	if err := f.Flush(); err != nil {
		return r.failf("follower flush: %v", err)
	}
	at := f.FlushedOffset()
	if end := f.LogEndOffset(); at != end {
		return r.failf("follower flushed to %d, its log ends at %d", at, end)
	}
	res, err := r.p.UpdateFollower(followerID, -1, at, f.LatestEpoch(), r.nowMs)
	if r.dead {
		return nil
	}
	if err != nil {
		return r.failf("follower fetch at %d (epoch %d): %v", at, f.LatestEpoch(), err)
	}
	if res.Diverged {
		return r.truncateFollower(res)
	}
	data, err := r.p.Read(at, r.p.LogEndOffset(), maxBytes)
	if err != nil {
		return r.failf("leader read for the follower at %d: %v", at, err)
	}
	if len(data) > 0 {
		if _, err := f.AppendReplica(data, r.nowMs); err != nil {
			return r.failf("follower append at %d: %v", at, err)
		}
	}
	if err := f.SetFollowerHW(res.HighWatermark); err != nil {
		return r.failf("follower high watermark: %v", err)
	}
	return nil
}

// truncateFollower cuts the follower's log where the leader said it
// diverged: at the leader's end of the diverging epoch when the follower
// has that epoch too, else at the follower's own end of the largest
// epoch it has below it (the next fetch checks again from there).
func (r *runner) truncateFollower(res partition.FollowerFetch) error {
	f := r.f
	target := res.DivergingEndOffset
	epoch, end := f.EndOffsetForEpoch(res.DivergingEpoch)
	switch {
	case epoch < 0 || end < 0:
		target = f.HighWatermark()
	case epoch == res.DivergingEpoch:
		target = min(target, end)
	default:
		target = end
	}
	r.trace = append(r.trace, fmt.Sprintf("  follower diverged (epoch %d ends at %d here); truncating to %d", res.DivergingEpoch, res.DivergingEndOffset, target))
	if _, err := f.TruncateTo(target); err != nil {
		return r.failf("follower truncation to %d: %v", target, err)
	}
	return r.followerReplayed()
}

// diverge makes the follower take batches of an epoch the leader never
// had, as a deposed leader writes them: the leader moves two epochs on,
// and the follower appends at its log end batches of the epoch between
// (plain, idempotent, transactional and a marker), fsyncing them so
// producer snapshots may describe them. Its next fetch finds them.
func (r *runner) diverge(a action) error {
	r.epoch += 2
	if err := r.p.SetLeader(r.epoch, []int32{leaderID, followerID}); err != nil {
		return r.expectOK("leader epoch", err)
	}
	f := r.f
	zombie := r.epoch - 1
	for i := range a.records + 1 {
		base := f.LogEndOffset()
		var b []byte
		switch (uint64(i) + a.keep) % 4 {
		case 0:
			b = batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Timestamp: r.nowMs},
				[]batch.Record{{Value: fmt.Appendf(nil, "z%d", base)}})
		case 1:
			b = batch.Build(batch.Spec{ProducerID: 99, ProducerEpoch: 0, BaseSequence: int32(base), Timestamp: r.nowMs},
				[]batch.Record{{Value: fmt.Appendf(nil, "z%d", base)}})
		case 2:
			b = batch.Build(batch.Spec{Attributes: batch.AttrTransactional, ProducerID: txnPIDs[a.keep%2], ProducerEpoch: 0, BaseSequence: 1000 + int32(base), Timestamp: r.nowMs},
				[]batch.Record{{Value: fmt.Appendf(nil, "z%d", base)}})
		default:
			b = zombieMarker(txnPIDs[a.keep%2], a.keep%3 == 0, r.nowMs)
		}
		batch.SetBaseOffset(b, base)
		batch.SetLeaderEpoch(b, zombie)
		if _, err := f.AppendReplica(b, r.nowMs); err != nil {
			return r.failf("divergent append at %d: %v", base, err)
		}
	}
	if err := f.Flush(); err != nil {
		return r.failf("follower flush: %v", err)
	}
	return nil
}

// zombieMarker is a transaction marker a deposed leader wrote.
func zombieMarker(pid int64, commit bool, ts int64) []byte {
	key := kmsg.NewControlRecordKey()
	key.Type = batch.ControlAbort
	if commit {
		key.Type = batch.ControlCommit
	}
	value := kmsg.NewEndTxnMarker()
	return batch.Build(batch.Spec{Attributes: batch.AttrControl | batch.AttrTransactional, ProducerID: pid, BaseSequence: -1, Timestamp: ts},
		[]batch.Record{{Key: key.AppendTo(nil), Value: value.AppendTo(nil)}})
}

// checkReplicas runs the replication invariants after a step:
//
//   - start ≤ LSO ≤ HW ≤ LEO on the follower (the leader's are check's);
//   - the leader's high watermark is at most its own flushed offset and
//     the follower's: nothing is visible that an ISR member could lose;
//   - below the leader's high watermark the follower's log holds the
//     leader's batches byte for byte.
func (r *runner) checkReplicas() error {
	if !r.replicated || r.dead {
		return nil
	}
	f := r.f
	start, lso, hw := f.Offsets()
	if end := f.LogEndOffset(); !(start <= lso && lso <= hw && hw <= end) {
		return r.failf("follower offsets out of order: log start %d, LSO %d, HW %d, LEO %d", start, lso, hw, end)
	}
	lhw := r.p.HighWatermark()
	if flushed := r.p.FlushedOffset(); lhw > flushed {
		return r.failf("leader high watermark %d above its flushed offset %d", lhw, flushed)
	}
	if flushed := f.FlushedOffset(); lhw > flushed {
		return r.failf("leader high watermark %d above the follower's flushed offset %d", lhw, flushed)
	}
	from := max(r.p.LogStartOffset(), f.LogStartOffset())
	if from >= lhw {
		return nil
	}
	want, err := r.rawRead(r.p, from, lhw)
	if err != nil {
		return err
	}
	got, err := r.rawRead(f, from, lhw)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return r.failf("below the high watermark %d the follower's log differs from the leader's (from %d)", lhw, from)
	}
	return nil
}

// rawRead is the stored bytes of the batches holding [from, to).
func (r *runner) rawRead(p *partition.Partition, from, to int64) ([]byte, error) {
	var out []byte
	for from < to {
		data, err := p.Read(from, to, 1<<20)
		if err != nil || len(data) == 0 {
			return nil, r.failf("read [%d, %d): %d bytes, %v", from, to, len(data), err)
		}
		out = append(out, data...)
		got, err := parseBatches(data)
		if err != nil {
			return nil, r.failf("stored batches at %d: %v", from, err)
		}
		from = got[len(got)-1].last + 1
	}
	return out, nil
}

// followerReplayed checks, after a truncation, that the follower's
// producer state and aborted transactions are what a replay of its log
// from the start gives.
func (r *runner) followerReplayed() error {
	c := r.ffs.Clone()
	for _, name := range c.List(followerDir, ".snapshot") {
		if err := c.Remove(filepath.Join(followerDir, name)); err != nil {
			return r.failf("remove %s: %v", name, err)
		}
	}
	q, err := partition.OpenWith("t", 0, followerDir, r.followerConfig(c), 0, nil, r.followerOptions())
	if err != nil {
		return r.failf("open the follower for replay: %v", err)
	}
	defer q.Close()
	start, end := r.f.LogStartOffset(), r.f.LogEndOffset()
	if err := sameProducers(r.f.Producers(), q.Producers(), start); err != nil {
		return r.failf("follower producer state after truncation differs from a replay of its log: %v", err)
	}
	if got, want := fmt.Sprint(r.f.AbortedTransactions(start, end)), fmt.Sprint(q.AbortedTransactions(start, end)); got != want {
		return r.failf("follower aborted transactions after truncation %v, a replay's %v", got, want)
	}
	return nil
}
