package partition

// Tests of the follower's side of replication: AppendReplica, the
// follower's high watermark and TruncateTo, with crashes at every file
// operation of the last two.

import (
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

const followerDir = "/f"

func followerConfig(fs *logtest.MemFS) wlog.Config {
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	cfg.Now = func() time.Time { return time.UnixMilli(1000) }
	cfg.SegmentBytes = 300 // several segments, so truncation removes some
	cfg.IndexIntervalBytes = 64
	return cfg
}

// openFollower opens replica 1 as a follower in /f on fs.
func openFollower(t *testing.T, fs *logtest.MemFS) *Partition {
	t.Helper()
	p, err := OpenWith("t", 0, followerDir, followerConfig(fs), 0, nil,
		Options{ManualFlush: true, ReplicaID: 1, Follower: true, SnapshotIntervalBytes: 150})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// replicate copies the leader's log from the follower's end to the
// leader's, a few batches per fetch, and fsyncs it.
func replicate(t *testing.T, leader, f *Partition) {
	t.Helper()
	for f.LogEndOffset() < leader.LogEndOffset() {
		data, err := leader.Read(f.LogEndOffset(), leader.LogEndOffset(), 200)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.AppendReplica(data, 1000); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
}

// replicaBatch builds a batch as a leader at epoch stores it at base.
func replicaBatch(spec batch.Spec, base int64, epoch int32, values ...string) []byte {
	var recs []batch.Record
	for _, v := range values {
		recs = append(recs, batch.Record{Value: []byte(v)})
	}
	b := batch.Build(spec, recs)
	batch.SetBaseOffset(b, base)
	batch.SetLeaderEpoch(b, epoch)
	return b
}

// markerBatch builds a transaction marker as a leader at epoch stores it
// at base.
func markerBatch(pid int64, commit bool, base int64, epoch int32) []byte {
	key := kmsg.NewControlRecordKey()
	key.Type = batch.ControlAbort
	if commit {
		key.Type = batch.ControlCommit
	}
	value := kmsg.NewEndTxnMarker()
	b := batch.Build(batch.Spec{Attributes: batch.AttrControl | batch.AttrTransactional, ProducerID: pid, BaseSequence: -1},
		[]batch.Record{{Key: key.AppendTo(nil), Value: value.AppendTo(nil)}})
	batch.SetBaseOffset(b, base)
	batch.SetLeaderEpoch(b, epoch)
	return b
}

func idemSpec(pid int64, seq int32) batch.Spec {
	return batch.Spec{ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq}
}

// leaderWorkload fills a leader with plain, idempotent and transactional
// batches and markers over two leader epochs, ending with transaction 8
// open.
func leaderWorkload(t *testing.T, p *Partition) {
	t.Helper()
	advAppend(t, p, plain, "a", "b")
	advAppend(t, p, idemSpec(1, 0), "i0")
	advAppend(t, p, txnSpec(7, 0), "t7a")
	advAppend(t, p, txnSpec(8, 0), "t8a")
	if _, err := p.AppendMarker(7, 0, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.SetLeader(2, []int32{0}); err != nil {
		t.Fatal(err)
	}
	advAppend(t, p, idemSpec(1, 1), "i1", "i2")
	if _, err := p.AppendMarker(8, 0, true, 0); err != nil {
		t.Fatal(err)
	}
	advAppend(t, p, txnSpec(8, 1), "t8b")
	advAppend(t, p, plain, "c")
	advSync(t, p)
}

// stateOf describes what a replay of the log decides: producers, the
// aborted transactions and the first offset of the earliest open
// transaction.
func stateOf(p *Partition) string {
	end := p.LogEndOffset()
	p.wmu.Lock()
	open := min(p.openFirst, end)
	p.wmu.Unlock()
	return fmt.Sprintf("producers %v aborted %v open from %d", producersOf(p), p.AbortedTransactions(0, end), open)
}

// replayedFollower is the state of a follower opened from a copy of fs
// without producer snapshots: a replay of its whole log.
func replayedFollower(t *testing.T, fs *logtest.MemFS) string {
	t.Helper()
	c := fs.Clone()
	for _, name := range c.List(followerDir, ".snapshot") {
		if err := c.Remove(followerDir + "/" + name); err != nil {
			t.Fatal(err)
		}
	}
	q := openFollower(t, c)
	defer q.Close()
	return stateOf(q)
}

func logBytes(t *testing.T, p *Partition) []byte {
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

func TestAFollowerHoldsTheLeadersLogByteForByteAndItsState(t *testing.T) {
	leader := openLeader(t, 0)
	leaderWorkload(t, leader)
	f := openFollower(t, logtest.NewMemFS())
	defer f.Close()
	replicate(t, leader, f)
	if !bytes.Equal(logBytes(t, f), logBytes(t, leader)) {
		t.Fatal("the follower's log differs from the leader's")
	}
	for epoch := int32(0); epoch <= 3; epoch++ {
		fe, fo := f.EndOffsetForEpoch(epoch)
		le, lo := leader.EndOffsetForEpoch(epoch)
		if fe != le || fo != lo {
			t.Errorf("epoch %d: follower (%d, %d), leader (%d, %d)", epoch, fe, fo, le, lo)
		}
	}
	// With the leader's high watermark the follower shows the same
	// state and last stable offset.
	if err := f.SetFollowerHW(leader.HighWatermark()); err != nil {
		t.Fatal(err)
	}
	if got, want := stateOf(f), stateOf(leader); got != want {
		t.Fatalf("follower state\n%s\nleader state\n%s", got, want)
	}
	_, flso, fhw := f.Offsets()
	_, llso, lhw := leader.Offsets()
	if flso != llso || fhw != lhw {
		t.Fatalf("follower LSO %d HW %d, leader LSO %d HW %d", flso, fhw, llso, lhw)
	}
}

func TestAFollowersHighWatermarkIsTheSmallerOfTheLeadersAndItsFlushedOffset(t *testing.T) {
	f := openFollower(t, logtest.NewMemFS())
	defer f.Close()
	if _, err := f.AppendReplica(replicaBatch(plain, 0, 0, "a", "b", "c"), 1); err != nil {
		t.Fatal(err)
	}
	if err := f.SetFollowerHW(2); err != nil {
		t.Fatal(err)
	}
	wantHW(t, f, 0) // nothing fsynced here
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	wantHW(t, f, 2)
	if err := f.SetFollowerHW(10); err != nil { // the leader has more
		t.Fatal(err)
	}
	wantHW(t, f, 3)
	if err := f.SetFollowerHW(1); err != nil { // never back
		t.Fatal(err)
	}
	wantHW(t, f, 3)
}

func TestAppendReplicaRefusesBadDataAndStoresNoneOfIt(t *testing.T) {
	f := openFollower(t, logtest.NewMemFS())
	defer f.Close()
	if _, err := f.AppendReplica(replicaBatch(plain, 0, 3, "a"), 1); err != nil {
		t.Fatal(err)
	}
	good := replicaBatch(plain, 1, 3, "b")
	corrupt := replicaBatch(plain, 2, 3, "c")
	corrupt[len(corrupt)-1] ^= 0xff
	cases := map[string][]byte{
		"a gap":                    replicaBatch(plain, 2, 3, "x"),
		"an overlap":               replicaBatch(plain, 0, 3, "x"),
		"batches not consecutive":  append(slices.Clone(good), replicaBatch(plain, 5, 3, "x")...),
		"a corrupt batch after":    append(slices.Clone(good), corrupt...),
		"a truncated batch after":  append(slices.Clone(good), replicaBatch(plain, 2, 3, "c")[:30]...),
		"an older epoch":           replicaBatch(plain, 1, 2, "x"),
		"epochs going back inside": append(slices.Clone(good), replicaBatch(plain, 2, 1, "x")...),
		"no leader epoch":          replicaBatch(plain, 1, -1, "x"),
		"nothing":                  nil,
	}
	before := logBytes(t, f)
	for name, data := range cases {
		if _, err := f.AppendReplica(data, 1); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if end := f.LogEndOffset(); end != 1 || !bytes.Equal(logBytes(t, f), before) {
			t.Fatalf("%s: the log changed (end %d)", name, end)
		}
	}
	if _, err := f.AppendReplica(replicaBatch(plain, 2, 3, "x"), 1); !errors.Is(err, ErrUnexpectedOffset) {
		t.Fatalf("a gap: %v, want ErrUnexpectedOffset", err)
	}
}

// divergedFollower is a follower that copied the leader's first epoch
// and then took batches of an epoch the leader never had (a deposed
// leader's writes), with a producer snapshot taken past the point where
// they begin. It returns the follower and that point.
func divergedFollower(t *testing.T, fs *logtest.MemFS) (*Partition, int64) {
	t.Helper()
	f := openFollower(t, fs)
	var next int64
	add := func(b []byte) {
		t.Helper()
		end, err := f.AppendReplica(b, 1000)
		if err != nil {
			t.Fatal(err)
		}
		next = end
	}
	add(replicaBatch(plain, 0, 0, "a", "b"))
	add(replicaBatch(idemSpec(1, 0), 2, 0, "i0"))
	add(replicaBatch(txnSpec(7, 0), 3, 0, "t7a"))
	add(replicaBatch(txnSpec(8, 0), 4, 0, "t8a"))
	add(markerBatch(7, false, 5, 0))
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	diverge := next
	add(replicaBatch(idemSpec(1, 1), next, 1, "x1", "x2"))
	add(markerBatch(8, false, next, 1))
	add(replicaBatch(txnSpec(9, 0), next, 1, "t9"))
	add(replicaBatch(plain, next, 1, "x3"))
	if err := f.SetFollowerHW(next); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if f.HighWatermark() <= diverge {
		t.Fatalf("high watermark %d not past the divergence at %d", f.HighWatermark(), diverge)
	}
	above := false
	for _, name := range fs.List(followerDir, ".snapshot") {
		var off int64
		fmt.Sscanf(name, "%d", &off)
		above = above || off > diverge
	}
	if !above {
		t.Fatalf("no snapshot above the divergence at %d: %v", diverge, fs.List(followerDir, ".snapshot"))
	}
	return f, diverge
}

func TestTruncateToLeavesTheStateAReplayOfTheRemainingLogGives(t *testing.T) {
	fs := logtest.NewMemFS()
	f, diverge := divergedFollower(t, fs)
	end, err := f.TruncateTo(diverge)
	if err != nil || end != diverge || f.LogEndOffset() != diverge {
		t.Fatalf("truncate to %d: end %d (log end %d), %v", diverge, end, f.LogEndOffset(), err)
	}
	wantHW(t, f, diverge)
	if got, want := stateOf(f), replayedFollower(t, fs); got != want {
		t.Fatalf("state after truncation\n%s\nreplay\n%s", got, want)
	}
	// Transaction 8's abort was cut: it is open again and holds the LSO.
	if lso := f.LastStableOffset(); lso != 4 {
		t.Fatalf("last stable offset %d, want 4 (transaction 8 open again)", lso)
	}
	for _, name := range fs.List(followerDir, ".snapshot") {
		var off int64
		fmt.Sscanf(name, "%d", &off)
		if off > diverge {
			t.Fatalf("snapshot %s of the cut batches kept", name)
		}
	}
	if epoch, _ := f.EndOffsetForEpoch(1); epoch != -1 {
		t.Fatalf("epoch 1 of the cut batches still known (answer %d)", epoch)
	}
	// The follower goes on with the leader's batches of epoch 2 there,
	// and a reopen recovers the same state as a replay.
	if _, err := f.AppendReplica(replicaBatch(idemSpec(1, 1), diverge, 2, "i1"), 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AppendReplica(markerBatch(8, true, diverge+1, 2), 1000); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := openFollower(t, fs)
	defer g.Close()
	if got, want := stateOf(g), replayedFollower(t, fs); got != want {
		t.Fatalf("state after a reopen\n%s\nreplay\n%s", got, want)
	}
	if epoch, end := g.EndOffsetForEpoch(1); epoch != 0 || end != diverge {
		t.Fatalf("epoch 1 after the reopen: (%d, %d), want (0, %d)", epoch, end, diverge)
	}
}

func TestTruncateToInsideABatchCutsTheWholeBatch(t *testing.T) {
	f := openFollower(t, logtest.NewMemFS())
	defer f.Close()
	if _, err := f.AppendReplica(append(replicaBatch(plain, 0, 0, "a"), replicaBatch(plain, 1, 0, "b", "c", "d")...), 1); err != nil {
		t.Fatal(err)
	}
	if end, err := f.TruncateTo(2); err != nil || end != 1 {
		t.Fatalf("truncate to 2 inside [1, 3]: end %d, %v, want 1", end, err)
	}
	if end, err := f.TruncateTo(5); err != nil || end != 1 {
		t.Fatalf("truncate past the end: end %d, %v, want 1 unchanged", end, err)
	}
}

// crashAt loses power at the n-th mutating file operation from now on:
// it returns where the crashed file system will be put.
func crashAt(fs *logtest.MemFS, n int) **logtest.MemFS {
	var crashed *logtest.MemFS
	ops := 0
	fs.SetFault(func(op logtest.Op, path string) error {
		if crashed != nil {
			return errors.New("power lost")
		}
		if op == logtest.OpRead || op == logtest.OpReadDir {
			return nil
		}
		ops++
		if ops == n {
			crashed = fs.Crash(func(path string, tail int) int { return tail / 2 })
			return errors.New("power lost")
		}
		return nil
	})
	return &crashed
}

// A crash at any file operation of a truncation leaves a log that reopens
// as a prefix of the one before holding everything below the cut, its
// producer state and epochs what a replay of it gives.
func TestCrashAtEveryOperationOfTruncateToLeavesAPrefixWithAReplayedState(t *testing.T) {
	for n := 1; ; n++ {
		fs := logtest.NewMemFS()
		f, diverge := divergedFollower(t, fs)
		before := logBytes(t, f)
		crashed := crashAt(fs, n)
		_, err := f.TruncateTo(diverge)
		if *crashed == nil {
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if n == 1 {
				t.Fatal("truncation did no file operation")
			}
			return
		}
		g := openFollower(t, *crashed)
		after := logBytes(t, g)
		if !bytes.HasPrefix(before, after) || g.LogEndOffset() < diverge {
			t.Fatalf("crash at op %d: log of %d bytes ending at %d is not a prefix of the %d before holding [0, %d)", n, len(after), g.LogEndOffset(), len(before), diverge)
		}
		if got, want := stateOf(g), replayedFollower(t, *crashed); got != want {
			t.Fatalf("crash at op %d: state\n%s\nreplay\n%s", n, got, want)
		}
		checkEpochsAreTheLogs(t, g, *crashed, n)
		g.Close()
	}
}

// checkEpochsAreTheLogs compares the epochs p loaded with those a scan of
// its log finds.
func checkEpochsAreTheLogs(t *testing.T, p *Partition, fs *logtest.MemFS, n int) {
	t.Helper()
	c := fs.Clone()
	if err := c.Remove(followerDir + "/" + EpochCheckpointFile); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		t.Fatal(err)
	}
	q := openFollower(t, c)
	defer q.Close()
	if !equalEpochs(p.epochs, q.epochs) {
		t.Fatalf("crash at op %d: epochs %v, the log's %v", n, p.epochs, q.epochs)
	}
	// The file says the same, or a batch of an older epoch appended where
	// a lost epoch began would be taken for that epoch's at the next open.
	data, err := fs.ReadFile(followerDir + "/" + EpochCheckpointFile)
	if errors.Is(err, iofs.ErrNotExist) {
		return
	}
	onDisk, err := decodeEpochs(data)
	if err != nil || !equalEpochs(onDisk, q.epochs) {
		t.Fatalf("crash at op %d: checkpoint after the reopen %v (%v), the log's %v", n, onDisk, err, q.epochs)
	}
}

// A crash at any file operation of a replica append and its flush leaves
// a log that reopens as a prefix of the leader's, its producer state and
// epochs what a replay of it gives.
func TestCrashAtEveryOperationOfAppendReplicaLeavesAPrefixWithAReplayedState(t *testing.T) {
	leader := openLeader(t, 0)
	leaderWorkload(t, leader)
	want := logBytes(t, leader)
	for n := 1; ; n++ {
		fs := logtest.NewMemFS()
		f := openFollower(t, fs)
		crashed := crashAt(fs, n)
		for f.LogEndOffset() < leader.LogEndOffset() && *crashed == nil {
			data, err := leader.Read(f.LogEndOffset(), leader.LogEndOffset(), 200)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.AppendReplica(data, 1000); err != nil {
				break
			}
			if err := f.Flush(); err != nil {
				break
			}
		}
		if *crashed == nil {
			f.Close()
			return
		}
		g := openFollower(t, *crashed)
		if got := logBytes(t, g); !bytes.HasPrefix(want, got) {
			t.Fatalf("crash at op %d: the follower's log is not a prefix of the leader's", n)
		}
		if got, want := stateOf(g), replayedFollower(t, *crashed); got != want {
			t.Fatalf("crash at op %d: state\n%s\nreplay\n%s", n, got, want)
		}
		checkEpochsAreTheLogs(t, g, *crashed, n)
		g.Close()
	}
}

func TestTruncateFullyAndStartAtEmptiesTheLogAndItsStateAtTheNewStart(t *testing.T) {
	fs := logtest.NewMemFS()
	f, _ := divergedFollower(t, fs)
	if err := f.TruncateFullyAndStartAt(100); err != nil {
		t.Fatal(err)
	}
	if start, lso, hw := f.Offsets(); start != 100 || lso != 100 || hw != 100 || f.LogEndOffset() != 100 {
		t.Fatalf("start %d LSO %d HW %d end %d, want all 100", start, lso, hw, f.LogEndOffset())
	}
	if got := f.Producers(); len(got) != 0 || len(fs.List(followerDir, ".snapshot")) != 0 {
		t.Fatalf("producers %v and snapshots %v left", got, fs.List(followerDir, ".snapshot"))
	}
	if _, err := f.AppendReplica(replicaBatch(idemSpec(1, 7), 100, 4, "n"), 1000); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	g := openFollower(t, fs)
	defer g.Close()
	if g.LogStartOffset() != 100 || g.LogEndOffset() != 101 {
		t.Fatalf("reopened [%d, %d), want [100, 101)", g.LogStartOffset(), g.LogEndOffset())
	}
	if got, want := stateOf(g), replayedFollower(t, fs); got != want {
		t.Fatalf("state after a reopen\n%s\nreplay\n%s", got, want)
	}
	if epoch, end := g.EndOffsetForEpoch(4); epoch != 4 || end != 101 {
		t.Fatalf("epoch 4: (%d, %d), want (4, 101)", epoch, end)
	}
}

// A crash at any file operation of a full truncation leaves a prefix of
// the log before, or an empty log at the new start.
func TestCrashAtEveryOperationOfTruncateFullyLeavesAPrefixOrTheEmptyLog(t *testing.T) {
	for n := 1; ; n++ {
		fs := logtest.NewMemFS()
		f, _ := divergedFollower(t, fs)
		before := logBytes(t, f)
		crashed := crashAt(fs, n)
		err := f.TruncateFullyAndStartAt(100)
		if *crashed == nil {
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			return
		}
		g := openFollower(t, *crashed)
		after := logBytes(t, g)
		empty := g.LogEndOffset() == g.LogStartOffset()
		if !bytes.HasPrefix(before, after) || (empty && g.LogStartOffset() != 100 && g.LogStartOffset() != 0) || (!empty && g.LogStartOffset() != 0) {
			t.Fatalf("crash at op %d: log [%d, %d) of %d bytes, neither a prefix of the one before nor empty at 100", n, g.LogStartOffset(), g.LogEndOffset(), len(after))
		}
		if got, want := stateOf(g), replayedFollower(t, *crashed); got != want {
			t.Fatalf("crash at op %d: state\n%s\nreplay\n%s", n, got, want)
		}
		checkEpochsAreTheLogs(t, g, *crashed, n)
		g.Close()
	}
}
