package partition

// Tests of the leader's side of replication: the high watermark from the
// followers' acknowledgements, min.insync.replicas, the caught-up rule,
// roles and the log-end watchers.

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// openLeader opens a leader (replica 0) of ISR isr on a fresh MemFS with
// manual flushing and the clock at nowMs.
func openLeader(t *testing.T, isr ...int32) *Partition {
	t.Helper()
	cfg := wlog.DefaultConfig()
	cfg.FS = logtest.NewMemFS()
	cfg.Now = func() time.Time { return time.UnixMilli(1000) }
	p, err := OpenWith("t", 0, "/l", cfg, 0, isr, Options{ManualFlush: true, ReplicaID: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func wantHW(t *testing.T, p *Partition, want int64) {
	t.Helper()
	if hw := p.HighWatermark(); hw != want {
		t.Fatalf("high watermark %d, want %d", hw, want)
	}
}

func update(t *testing.T, p *Partition, replica int32, offset int64, nowMs int64) FollowerFetch {
	t.Helper()
	res, err := p.UpdateFollower(replica, -1, offset, -1, nowMs)
	if err != nil || res.Diverged {
		t.Fatalf("follower %d at %d: %+v %v", replica, offset, res, err)
	}
	return res
}

func TestHighWatermarkIsTheSmallestAcknowledgedOffsetOfTheISR(t *testing.T) {
	p := openLeader(t, 0, 2, 3)
	advAppend(t, p, plain, "a", "b", "c") // 0-2
	advSync(t, p)
	wantHW(t, p, 0) // neither follower fetched yet
	update(t, p, 2, 3, 1)
	wantHW(t, p, 0) // 3 has not
	if res := update(t, p, 3, 1, 1); res.HighWatermark != 1 || res.LogEndOffset != 3 {
		t.Fatalf("answer %+v, want high watermark 1 and log end 3", res)
	}
	update(t, p, 3, 3, 2)
	wantHW(t, p, 3)
}

func TestHighWatermarkNeverPassesTheLeadersOwnFlushedOffset(t *testing.T) {
	p := openLeader(t, 0, 2)
	advAppend(t, p, plain, "a", "b") // 0-1, not synced
	update(t, p, 2, 2, 1)            // the follower has it durable, the leader not
	wantHW(t, p, 0)
	advSync(t, p)
	wantHW(t, p, 2)
}

func TestHighWatermarkNeverMovesBack(t *testing.T) {
	p := openLeader(t, 0, 2)
	advAppend(t, p, plain, "a", "b")
	advSync(t, p)
	update(t, p, 2, 2, 1)
	wantHW(t, p, 2)
	update(t, p, 2, 1, 2) // a stale fetch
	wantHW(t, p, 2)
}

func TestHighWatermarkStopsWhileTheISRIsSmallerThanMinISR(t *testing.T) {
	p := openLeader(t, 0)
	p.SetMinISR(2)
	if !p.UnderMinISR() {
		t.Fatal("ISR of 1 with min.insync.replicas 2 not reported under it")
	}
	advAppend(t, p, plain, "a")
	advSync(t, p)
	wantHW(t, p, 0)
	if err := p.SetLeader(0, []int32{0, 2}); err != nil {
		t.Fatal(err)
	}
	if p.UnderMinISR() {
		t.Fatal("ISR of 2 reported under min.insync.replicas 2")
	}
	update(t, p, 2, 1, 1)
	wantHW(t, p, 1)
	// Shrinking below min.insync.replicas stops it again.
	if err := p.SetLeader(0, []int32{0}); err != nil {
		t.Fatal(err)
	}
	advAppend(t, p, plain, "b")
	advSync(t, p)
	wantHW(t, p, 1)
	p.SetMinISR(1)
	wantHW(t, p, 2)
}

func TestAcksAllWaitIsAnsweredOnlyOnceEveryISRMemberAcknowledges(t *testing.T) {
	p := openLeader(t, 0, 2)
	base := advAppend(t, p, plain, "a")
	wait := p.WaitDurable(base + 1)
	advSync(t, p)
	select {
	case err := <-wait:
		t.Fatalf("answered %v before the follower acknowledged", err)
	default:
	}
	update(t, p, 2, base+1, 1)
	if err := <-wait; err != nil {
		t.Fatal(err)
	}
}

func TestDroppingALaggingFollowerFromTheISRLetsTheHighWatermarkMove(t *testing.T) {
	p := openLeader(t, 0, 2)
	advAppend(t, p, plain, "a", "b")
	advSync(t, p)
	wantHW(t, p, 0)
	if err := p.SetLeader(0, []int32{0}); err != nil {
		t.Fatal(err)
	}
	wantHW(t, p, 2)
}

func TestANewLeaderEpochForgetsWhatTheFollowersHeld(t *testing.T) {
	p := openLeader(t, 0, 2)
	advAppend(t, p, plain, "a")
	advSync(t, p)
	update(t, p, 2, 1, 1)
	wantHW(t, p, 1)
	if err := p.SetLeader(1, []int32{0, 2}); err != nil {
		t.Fatal(err)
	}
	advAppend(t, p, plain, "b")
	advSync(t, p)
	wantHW(t, p, 1) // 2's offset from the old epoch does not count
	update(t, p, 2, 2, 2)
	wantHW(t, p, 2)
}

func TestAFetchFromADivergedLogIsNotCounted(t *testing.T) {
	p := openLeader(t, 0, 2)
	advAppend(t, p, plain, "a", "b") // 0-1 at epoch 0
	if err := p.SetLeader(3, []int32{0, 2}); err != nil {
		t.Fatal(err)
	}
	advAppend(t, p, plain, "c") // 2 at epoch 3
	advSync(t, p)
	// The follower's last batch is of epoch 1, which this log never had:
	// epoch 0 ends at 2 here.
	res, err := p.UpdateFollower(2, -1, 3, 1, 1)
	if err != nil || !res.Diverged || res.DivergingEpoch != 0 || res.DivergingEndOffset != 2 {
		t.Fatalf("diverged fetch: %+v %v, want epoch 0 ending at 2", res, err)
	}
	wantHW(t, p, 0)
	// A follower with epoch 0 up to 2 is on this log's branch.
	if res, err := p.UpdateFollower(2, -1, 2, 0, 1); err != nil || res.Diverged {
		t.Fatalf("fetch on the leader's branch: %+v %v", res, err)
	}
	wantHW(t, p, 2)
	if res, err := p.UpdateFollower(2, -1, 9, 3, 1); err != nil || !res.Diverged || res.DivergingEndOffset != 3 {
		t.Fatalf("a fetch past the log end: %+v %v, want it told epoch 3 ends at 3", res, err)
	}
	if _, err := p.UpdateFollower(2, -1, 9, -1, 1); !errors.Is(err, wlog.ErrOffsetOutOfRange) {
		t.Fatalf("a fetch past the log end without an epoch: %v, want ErrOffsetOutOfRange", err)
	}
}

func TestOutOfSyncReplicasAreThoseNotCaughtUpWithinTheLag(t *testing.T) {
	p := openLeader(t, 0, 2, 3)
	if err := p.SetLeader(1, []int32{0, 2, 3}); err != nil { // both count as caught up at 1000
		t.Fatal(err)
	}
	advAppend(t, p, plain, "a", "b") // log end 2
	update(t, p, 2, 2, 1500)         // at the log end: caught up at 1500
	update(t, p, 3, 1, 1500)         // behind
	if got := p.OutOfSyncReplicas(1400, 500); len(got) != 0 {
		t.Fatalf("out of sync within the lag: %v", got)
	}
	if got := p.OutOfSyncReplicas(2100, 500); !slices.Equal(got, []int32{3}) {
		t.Fatalf("out of sync %v, want [3]", got)
	}
	// 3 fetches at the end the leader had at its previous fetch (1):
	// caught up as of that fetch's time, 1500.
	advAppend(t, p, plain, "c")
	update(t, p, 3, 2, 2200)
	if got := p.OutOfSyncReplicas(1900, 500); len(got) != 0 {
		t.Fatalf("out of sync %v, want none", got)
	}
	if got := p.OutOfSyncReplicas(2100, 500); !slices.Equal(got, []int32{2, 3}) {
		t.Fatalf("out of sync %v, want [2 3]", got)
	}
}

func TestAFollowerIsCaughtUpOnceItHoldsTheHighWatermarkAndTheEpochStart(t *testing.T) {
	p := openLeader(t, 0)
	advAppend(t, p, plain, "a", "b")
	advSync(t, p) // HW 2
	if err := p.SetLeader(1, []int32{0}); err != nil {
		t.Fatal(err)
	}
	advAppend(t, p, plain, "c") // epoch 1 from 2
	advSync(t, p)               // HW 3
	if p.CaughtUp(4, 1, 30000) {
		t.Fatal("a replica that never fetched is caught up")
	}
	update(t, p, 4, 2, 1)
	if p.CaughtUp(4, 1, 30000) {
		t.Fatal("caught up below the high watermark")
	}
	update(t, p, 4, 3, 1)
	if !p.CaughtUp(4, 1, 30000) {
		t.Fatal("not caught up at the high watermark")
	}
}

// A follower that stopped fetching holds the high watermark at its fetch
// offset while it is in the ISR, so it is always at the high watermark;
// it must still not count as caught up once it has not reached the log
// end for replica.lag.time.max.ms, or the leader would add it back to
// the ISR in the same change that drops it, and the ISR would never
// shrink (acks=all writes time out instead of NOT_ENOUGH_REPLICAS, and a
// clean election picks a replica far behind).
func TestAFollowerThatStoppedFetchingIsNotCaughtUp(t *testing.T) {
	p := openLeader(t, 0, 2)
	advAppend(t, p, plain, "a")
	advSync(t, p)
	update(t, p, 2, 1, 1000) // at the log end: caught up at 1000
	advAppend(t, p, plain, "b", "c")
	advSync(t, p)
	if hw := p.HighWatermark(); hw != 1 {
		t.Fatalf("high watermark %d, want 1 (held by follower 2)", hw)
	}
	const lag = 500
	if !p.CaughtUp(2, 1400, lag) {
		t.Fatal("follower 2 not caught up within the lag")
	}
	if got := p.OutOfSyncReplicas(1600, lag); !slices.Equal(got, []int32{2}) {
		t.Fatalf("out of sync %v, want [2]", got)
	}
	if p.CaughtUp(2, 1600, lag) {
		t.Fatal("follower 2, out of sync since 1500, is caught up because it holds the high watermark it is holding back")
	}
}

func TestADeposedLeaderFailsItsAcksAllWaitsAndRefusesWrites(t *testing.T) {
	p := openLeader(t, 0, 2)
	base := advAppend(t, p, plain, "a")
	advSync(t, p)
	wait := p.WaitDurable(base + 1)
	p.BecomeFollower(1)
	if err := <-wait; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("waiter got %v, want ErrNotLeader", err)
	}
	if err := <-p.WaitDurable(base + 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a wait on a follower got %v, want ErrNotLeader", err)
	}
	b := batch.Build(plain, []batch.Record{{Value: []byte("x")}})
	h, _ := batch.Validate(b)
	if _, _, err := p.Append(b, h, 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("client append on a follower: %v, want ErrNotLeader", err)
	}
	if _, err := p.AppendMarker(7, 0, true, 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("marker on a follower: %v, want ErrNotLeader", err)
	}
	if _, err := p.UpdateFollower(2, -1, 1, -1, 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower fetch from a follower: %v, want ErrNotLeader", err)
	}
	if p.IsLeader() || p.ISR() != nil {
		t.Fatalf("follower reports leader %v, ISR %v", p.IsLeader(), p.ISR())
	}
}

func TestTheLeaderRefusesReplicaAppendsAndTruncation(t *testing.T) {
	p := openLeader(t, 0)
	b := batch.Build(plain, []batch.Record{{Value: []byte("x")}})
	batch.SetLeaderEpoch(b, 0)
	if _, err := p.AppendReplica(b, 1); !errors.Is(err, ErrNotFollower) {
		t.Fatalf("replica append on the leader: %v", err)
	}
	if _, err := p.TruncateTo(0); !errors.Is(err, ErrNotFollower) {
		t.Fatalf("truncation on the leader: %v", err)
	}
	if err := p.SetFollowerHW(5); !errors.Is(err, ErrNotFollower) {
		t.Fatalf("follower high watermark on the leader: %v", err)
	}
}

func TestAnAppendWakesTheLogEndWatchers(t *testing.T) {
	p := openLeader(t, 0)
	ch := make(chan struct{}, 1)
	p.WatchEnd(ch)
	advAppend(t, p, plain, "a")
	select {
	case <-ch:
	default:
		t.Fatal("append did not wake the log end watcher")
	}
	if _, err := p.AppendMarker(7, 0, false, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("marker did not wake the log end watcher")
	}
	p.UnwatchEnd(ch)
	advAppend(t, p, plain, "b")
	select {
	case <-ch:
		t.Fatal("unwatched channel woken")
	default:
	}
}

// A reopened replica with others in its ISR cannot know what they hold:
// its high watermark starts at the log start and rises as they fetch.
// Alone in its ISR it starts at the recovered log end, as it always did.
func TestAReopenedReplicaWithFollowersStartsItsHighWatermarkAtTheLogStart(t *testing.T) {
	fs := logtest.NewMemFS()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	reopen := func(isr ...int32) *Partition {
		p, err := OpenWith("t", 0, "/l", cfg, 0, isr, Options{ManualFlush: true})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := reopen(0, 2)
	advAppend(t, p, plain, "a", "b")
	advSync(t, p)
	update(t, p, 2, 2, 1)
	wantHW(t, p, 2)
	p.Close()
	p = reopen(0, 2)
	wantHW(t, p, 0)
	update(t, p, 2, 2, 1)
	wantHW(t, p, 2)
	p.Close()
	p = reopen(0)
	defer p.Close()
	wantHW(t, p, 2)
}

// A transaction whose marker had not reached the followers when the
// leader closed still holds the last stable offset after it reopens: the
// producer snapshot lists it, though the marker lies below the snapshot
// and is not replayed.
func TestAMarkerNotYetOnTheFollowersHoldsTheLastStableOffsetAcrossARestart(t *testing.T) {
	fs := logtest.NewMemFS()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	reopen := func() *Partition {
		p, err := OpenWith("t", 0, "/l", cfg, 0, []int32{0, 2}, Options{ManualFlush: true})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := reopen()
	advAppend(t, p, plain, "a")         // 0
	advAppend(t, p, txnSpec(7, 0), "t") // 1
	advSync(t, p)
	update(t, p, 2, 2, 1) // the follower has the transaction's batch
	end, err := p.AppendMarker(7, 0, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	advSync(t, p)
	if lso := p.LastStableOffset(); lso != 1 {
		t.Fatalf("last stable offset %d before the follower has the marker, want 1", lso)
	}
	p.Close() // snapshot at 3, past the marker
	p = reopen()
	defer p.Close()
	update(t, p, 2, 2, 1)
	wantHW(t, p, 2)
	if lso := p.LastStableOffset(); lso != 1 {
		t.Fatalf("last stable offset %d after a restart, want 1 until the follower has the marker", lso)
	}
	update(t, p, 2, end, 2)
	if lso := p.LastStableOffset(); lso != end {
		t.Fatalf("last stable offset %d once the follower has the marker, want %d", lso, end)
	}
}

// An ISR member added at the same epoch, before it fetched, is not
// reported out of sync at once.
func TestAnISRMemberAddedAtTheSameEpochStartsCaughtUp(t *testing.T) {
	p := openLeader(t, 0)
	advAppend(t, p, plain, "a")
	if err := p.SetLeader(0, []int32{0, 5}); err != nil { // at 1000
		t.Fatal(err)
	}
	if got := p.OutOfSyncReplicas(1200, 500); len(got) != 0 {
		t.Fatalf("out of sync %v, want none within the lag", got)
	}
	if got := p.OutOfSyncReplicas(1600, 500); !slices.Equal(got, []int32{5}) {
		t.Fatalf("out of sync %v, want [5] past the lag", got)
	}
}

// A leader epoch whose start cannot be made durable does not start.
func TestALeaderEpochThatCannotBeWrittenDoesNotStart(t *testing.T) {
	fs := logtest.NewMemFS()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	p, err := OpenWith("t", 0, "/l", cfg, 0, []int32{0}, Options{ManualFlush: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fs.SetFault(logtest.FailNth(logtest.OpRename, EpochCheckpointFile, 1, nil))
	if err := p.SetLeader(3, []int32{0}); err == nil {
		t.Fatal("epoch 3 started without its checkpoint")
	}
	if got := p.LatestEpoch(); got != 0 {
		t.Fatalf("latest epoch %d after the failed start, want 0", got)
	}
	if p.LeaderEpoch() != 0 {
		t.Fatalf("leader epoch %d after the failed start, want 0", p.LeaderEpoch())
	}
}

// A follower the controller removes from the ISR (it registered again:
// restarted, perhaps without its log) is not caught up on the strength
// of what it fetched before: until it fetches again, the leader assumes
// it holds nothing, and does not propose it back.
func TestAFollowerRemovedFromTheISRIsNotCaughtUpUntilItFetchesAgain(t *testing.T) {
	p := openLeader(t, 0, 2, 3)
	advAppend(t, p, plain, "a", "b")
	advSync(t, p)
	update(t, p, 2, 2, 1000)
	update(t, p, 3, 2, 1000)
	wantHW(t, p, 2)
	if err := p.SetLeader(0, []int32{0, 3}); err != nil { // same epoch, 2 removed
		t.Fatal(err)
	}
	if p.CaughtUp(2, 1000, 30000) {
		t.Fatal("follower 2, removed from the ISR, is caught up on its previous fetches")
	}
	if got := p.OutOfSyncReplicas(1000, 30000); len(got) != 0 {
		t.Fatalf("out of sync %v, want none", got)
	}
	update(t, p, 2, 0, 1100) // its new incarnation, empty
	if p.CaughtUp(2, 1100, 30000) {
		t.Fatal("follower 2 fetching from 0 is caught up")
	}
	update(t, p, 2, 2, 1200)
	if !p.CaughtUp(2, 1200, 30000) {
		t.Fatal("follower 2 at the high watermark is not caught up")
	}
	wantHW(t, p, 2)
}
