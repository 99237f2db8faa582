package broker

// The follower's side of a fetch round (appendFetched, followLeaderMarks)
// driven against a real leader partition on an in-memory file system, one
// round at a time, so that the order of every step is the test's.

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
	"github.com/weir-broker/weir/internal/partition"
)

// roundsConfig is a small-segment log configuration on fs.
func roundsConfig(fs *logtest.MemFS) wlog.Config {
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	cfg.Now = func() time.Time { return time.UnixMilli(1000) }
	cfg.SegmentBytes = 400
	cfg.IndexIntervalBytes = 64
	return cfg
}

// openReplica opens replica id of t-0 in dir on its own file system, as
// the leader at epoch with isr, or as a follower.
func openReplica(t *testing.T, dir string, id int32, epoch int32, isr []int32, follower bool) *partition.Partition {
	t.Helper()
	p, err := partition.OpenWith("t", 0, dir, roundsConfig(logtest.NewMemFS()), epoch, isr,
		partition.Options{ManualFlush: true, ReplicaID: id, Follower: follower})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// appendBatches appends each of batches to the leader p as one plain
// batch, then fsyncs.
func appendBatches(t *testing.T, p *partition.Partition, batches ...[]batch.Record) {
	t.Helper()
	for _, recs := range batches {
		b := batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
		h, err := batch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.Append(b, h, 1000); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
}

// produce appends one plain record per value, each its own batch, to the
// leader p and fsyncs.
func produce(t *testing.T, p *partition.Partition, values ...string) {
	t.Helper()
	var batches [][]batch.Record
	for _, v := range values {
		batches = append(batches, []batch.Record{{Value: []byte(v)}})
	}
	appendBatches(t, p, batches...)
}

// produceKeyed appends one record per key, each its own batch, to the
// leader p and fsyncs.
func produceKeyed(t *testing.T, p *partition.Partition, keys ...string) {
	t.Helper()
	var batches [][]batch.Record
	for _, k := range keys {
		batches = append(batches, []batch.Record{{Key: []byte(k), Value: []byte("v-" + k)}})
	}
	appendBatches(t, p, batches...)
}

// produceBatch appends one batch holding values, as a client's batch of
// several records, to the leader p and fsyncs.
func produceBatch(t *testing.T, p *partition.Partition, values ...string) {
	t.Helper()
	var recs []batch.Record
	for _, v := range values {
		recs = append(recs, batch.Record{Value: []byte(v)})
	}
	appendBatches(t, p, recs)
}

// quietBroker is a broker value with only what a fetch round's follower
// side uses: a logger.
func quietBroker() *Broker {
	return &Broker{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// leaderAnswer is the leader's answer to one follower fetch at the
// follower's fsynced offset and last epoch, built as replicaFetch builds
// it.
func leaderAnswer(t *testing.T, leader *partition.Partition, replica int32, fetchOffset int64, lastEpoch int32) *kmsg.FetchResponseTopicPartition {
	t.Helper()
	rp := kmsg.NewFetchResponseTopicPartition()
	ff, err := leader.UpdateFollower(replica, -1, fetchOffset, lastEpoch, 1000)
	switch {
	case errors.Is(err, wlog.ErrOffsetOutOfRange):
		rp.ErrorCode = kerr.OffsetOutOfRange.Code
		rp.LogStartOffset, rp.HighWatermark = leader.LogStartOffset(), leader.HighWatermark()
		return &rp
	case err != nil:
		rp.ErrorCode = errCode(err)
		return &rp
	}
	rp.HighWatermark, rp.LogStartOffset, rp.LastStableOffset = ff.HighWatermark, ff.LogStartOffset, leader.LastStableOffset()
	if ff.Diverged {
		rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = ff.DivergingEpoch, ff.DivergingEndOffset
		return &rp
	}
	if fetchOffset < ff.LogEndOffset {
		data, err := leader.Read(fetchOffset, ff.LogEndOffset, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		rp.RecordBatches = data
	}
	return &rp
}

// followRound runs one fetch round of follower f (replica id) against
// leader as fetchRound runs it for one partition: fetch from its fsynced
// offset with its last epoch, apply the answer, fsync what it appended,
// then take the leader's marks.
func followRound(t *testing.T, b *Broker, leader, f *partition.Partition, id int32) fetchOutcome {
	t.Helper()
	key := partitionKey{"t", 0}
	rp := leaderAnswer(t, leader, id, f.FlushedOffset(), f.LatestEpoch())
	out := b.appendFetched(key, f, rp)
	switch out {
	case fetchAppended:
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		fallthrough
	case fetchNothing:
		b.followLeaderMarks(key, f, rp)
	}
	return out
}

// wholeLog is every batch of p's log, in order, byte for byte.
func wholeLog(t *testing.T, p *partition.Partition) []byte {
	t.Helper()
	var out []byte
	for from, end := p.LogStartOffset(), p.LogEndOffset(); from < end; {
		data, err := p.Read(from, end, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data...)
		for d := data; len(d) > 0; {
			h, _ := batch.ParseHeader(d)
			from = h.NextOffset()
			d = d[h.Size():]
		}
	}
	return out
}

// TestADivergedFollowerWithAnEpochTheLeaderNeverHadConvergesToTheLeadersLog
// specifies KIP-279's truncation for a follower whose last epoch the
// leader never wrote: a follower whose log diverged from its leader's
// ends, after some fetch rounds, with the leader's log byte for byte and
// is counted by the leader at its log end (so it can rejoin the ISR).
//
// The interleaving (replica 0 = L, replica 1 = F):
//   - epoch 1, L leads: offsets 0-4, F copies them.
//   - epoch 2, L leads: writes 5-7, F never fetches them; L goes away.
//   - epoch 3, F leads (an unclean election): writes 5-9; F goes away.
//   - epoch 4, L leads again (unclean): writes 8-11.
//   - F returns and follows L: it fetches at 10 with last epoch 3. L's
//     largest epoch at or below 3 is 2, ending at 8: it answers diverging
//     epoch (2, 8). F has no epoch 2; KIP-279 says it must then cut to the
//     end of its own largest epoch below 2 (epoch 1, ending at 5) and ask
//     again, then copies L's 5-11. (Cutting to 8 would leave F's epoch-3
//     records at 5-7, and every later fetch would get the same answer.)
func TestADivergedFollowerWithAnEpochTheLeaderNeverHadConvergesToTheLeadersLog(t *testing.T) {
	b := quietBroker()
	l := openReplica(t, "/l", 0, 1, []int32{0, 1}, false)
	f := openReplica(t, "/f", 1, 0, nil, true)
	f.BecomeFollower(1)
	produce(t, l, "a0", "a1", "a2", "a3", "a4")
	for i := 0; i < 3; i++ {
		followRound(t, b, l, f, 1)
	}
	if f.LogEndOffset() != 5 {
		t.Fatalf("F holds up to %d after copying epoch 1, want 5", f.LogEndOffset())
	}

	// Epoch 2: L alone writes 5-7.
	if err := l.SetLeader(2, []int32{0}); err != nil {
		t.Fatal(err)
	}
	produce(t, l, "l5", "l6", "l7")
	// Epoch 3: F leads and writes 5-9 that L never sees.
	if err := f.SetLeader(3, []int32{1}); err != nil {
		t.Fatal(err)
	}
	produce(t, f, "f5", "f6", "f7", "f8", "f9")
	f.BecomeFollower(4)
	// Epoch 4: L leads again and writes 8-11.
	if err := l.SetLeader(4, []int32{0, 1}); err != nil {
		t.Fatal(err)
	}
	produce(t, l, "l8", "l9", "l10", "l11")

	for i := 0; i < 20 && f.LogEndOffset() != l.LogEndOffset(); i++ {
		followRound(t, b, l, f, 1)
	}
	followRound(t, b, l, f, 1) // one more, so L counts F at its end
	if !bytes.Equal(wholeLog(t, f), wholeLog(t, l)) {
		t.Fatalf("after 20 fetch rounds F's log [%d, %d) (last epoch %d) is not L's [%d, %d): F is stuck on a branch L never had",
			f.LogStartOffset(), f.LogEndOffset(), f.LatestEpoch(), l.LogStartOffset(), l.LogEndOffset())
	}
	if !l.CaughtUp(1, 1000, 30000) {
		t.Fatalf("L does not count F as caught up after F copied its log")
	}
}

// TestAFollowerWhoseLogStartFollowedTheLeaderTakesABatchTheCleanerFoldedAcrossIt
// specifies that a follower keeps up with a compacted leader whose log
// start lies inside a batch the cleaner folded: after some fetch rounds
// it holds the leader's log end and the leader counts it there, so it can
// be (or stay) in the ISR.
//
// The interleaving (replica 0 = L, alone in the ISR, cleanup.policy
// compact; replica 1 = F):
//   - L holds 0 (key a) and 1-2 (key b), one batch each; F copies them.
//   - DeleteRecords moves L's log start to 2; F's next round takes it
//     (followLeaderMarks): F's log starts at 2 and ends at 3.
//   - L takes 3-4 (key b) and more records that fill its segment and
//     supersede key b; the cleaner drops 1-4 and folds those batches into
//     the one at 0, which now spans 0-4.
//   - F fetches at 3: L answers with the batch holding 3, which starts at
//     0, below F's log start 2. F starts its log again at 0, takes the
//     batch whole, and follows L's log start up again.
func TestAFollowerWhoseLogStartFollowedTheLeaderTakesABatchTheCleanerFoldedAcrossIt(t *testing.T) {
	b := quietBroker()
	l := openReplica(t, "/l", 0, 1, []int32{0}, false)
	f := openReplica(t, "/f", 1, 0, nil, true)
	f.BecomeFollower(1)
	produceKeyed(t, l, "a", "b", "b")
	for i := 0; i < 3; i++ {
		followRound(t, b, l, f, 1)
	}
	if _, err := l.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	followRound(t, b, l, f, 1)
	if f.LogStartOffset() != 2 || f.LogEndOffset() != 3 {
		t.Fatalf("setup: F holds [%d, %d), want [2, 3)", f.LogStartOffset(), f.LogEndOffset())
	}
	produceKeyed(t, l, "b", "b")
	for i := 0; l.LogEndOffset() < 40; i++ {
		produceKeyed(t, l, "c"+strconv.Itoa(i))
	}
	produceKeyed(t, l, "b")
	for i := 0; l.LogEndOffset() < 80; i++ {
		produceKeyed(t, l, "d"+strconv.Itoa(i))
	}
	stats, err := l.Compact(time.UnixMilli(1000), 0)
	if err != nil {
		t.Fatal(err)
	}
	data, err := l.Read(3, l.LogEndOffset(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := batch.ParseHeader(data); h.BaseOffset >= 2 {
		t.Fatalf("setup: after compaction (%+v) the batch holding 3 starts at %d, not below L's log start 2", stats, h.BaseOffset)
	}

	for i := 0; i < 20 && f.FlushedOffset() < l.LogEndOffset(); i++ {
		followRound(t, b, l, f, 1)
	}
	followRound(t, b, l, f, 1)
	if f.FlushedOffset() != l.LogEndOffset() {
		t.Fatalf("after 20 fetch rounds F holds [%d, %d) and L's log ends at %d: F cannot take the folded batch that starts below its log start",
			f.LogStartOffset(), f.LogEndOffset(), l.LogEndOffset())
	}
}

// TestAFollowerBelowTheLeadersLogStartInsideABatchCatchesUp specifies the
// follower's restart at its leader's log start (resetOutOfRange, KIP-107's
// log start): a follower whose log ends below the leader's log start
// starts again there and, after some fetch rounds, holds the leader's log
// end and is counted there, also when DeleteRecords put the log start
// inside a batch (clients send many records per batch; DeleteRecords
// takes any offset).
//
// The interleaving (replica 0 = L; replica 1 = F, away, its log empty):
//   - L takes two batches of five records, 0-4 and 5-9.
//   - DeleteRecords before 7: L's log start is 7, inside the batch 5-9.
//   - F fetches at 0: OFFSET_OUT_OF_RANGE, it starts its log again at 7.
//   - F fetches at 7: L answers with the batch holding 7, which starts at
//     5, below F's log start 7. F starts its log again at 5, takes the
//     batch whole, and catches up with L's log end.
func TestAFollowerBelowTheLeadersLogStartInsideABatchCatchesUp(t *testing.T) {
	b := quietBroker()
	l := openReplica(t, "/l", 0, 1, []int32{0}, false)
	f := openReplica(t, "/f", 1, 0, nil, true)
	f.BecomeFollower(1)
	produceBatch(t, l, "r0", "r1", "r2", "r3", "r4")
	produceBatch(t, l, "r5", "r6", "r7", "r8", "r9")
	if _, err := l.DeleteRecordsBefore(7); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 7 {
		t.Fatalf("setup: L's log start %d, want 7", l.LogStartOffset())
	}
	for i := 0; i < 20 && f.FlushedOffset() < l.LogEndOffset(); i++ {
		followRound(t, b, l, f, 1)
	}
	followRound(t, b, l, f, 1)
	if f.FlushedOffset() != l.LogEndOffset() || f.HighWatermark() != l.HighWatermark() {
		t.Fatalf("after 20 fetch rounds F holds [%d, %d) with high watermark %d; L holds [%d, %d) with high watermark %d",
			f.LogStartOffset(), f.LogEndOffset(), f.HighWatermark(), l.LogStartOffset(), l.LogEndOffset(), l.HighWatermark())
	}
}
