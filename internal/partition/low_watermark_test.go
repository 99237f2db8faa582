package partition

import (
	"errors"
	"testing"
)

// wantLow asserts the low watermark counting the followers in replicas.
func wantLow(t *testing.T, p *Partition, replicas []int32, want int64) {
	t.Helper()
	if low, err := p.LowWatermark(replicas); err != nil || low != want {
		t.Fatalf("low watermark of replicas %v: %d (%v), want %d", replicas, low, err, want)
	}
}

// The low watermark is the smallest log start of the leader and the
// followers counted; one counted that has not reported its log start
// holds it at -1, one not among the replicas counted (a dead broker's)
// does not hold it.
func TestLowWatermarkIsTheSmallestReportedLogStartOfTheLiveReplicas(t *testing.T) {
	p := openLeader(t, 0, 2, 3)
	advAppend(t, p, plain, "a", "b", "c", "d", "e") // 0-4
	advSync(t, p)
	all := []int32{0, 2, 3}
	wantLow(t, p, all, -1)
	wantLow(t, p, []int32{0}, 0)
	update(t, p, 2, 5, 1)
	update(t, p, 3, 5, 1)
	wantHW(t, p, 5)
	if _, err := p.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	// Neither follower has sent a log start: not known.
	wantLow(t, p, all, -1)
	wantLow(t, p, []int32{0}, 3)

	p.SetFollowerLogStart(2, 0)
	p.SetFollowerLogStart(3, 0)
	wantLow(t, p, all, 0)
	p.SetFollowerLogStart(2, 3)
	wantLow(t, p, all, 0) // 3 still starts at 0
	wantLow(t, p, []int32{0, 2}, 3)
	p.SetFollowerLogStart(3, 3)
	wantLow(t, p, all, 3)

	// A follower ahead of the leader does not raise it past the leader.
	p.SetFollowerLogStart(2, 4)
	p.SetFollowerLogStart(3, 4)
	wantLow(t, p, all, 3)
}

// A follower's new log start wakes the low watermark's watchers, and so
// does losing the leadership, after which there is no low watermark.
func TestLowWatermarkWatchersWakeOnFollowerLogStartAndDeposal(t *testing.T) {
	p := openLeader(t, 0, 2)
	ch := make(chan struct{}, 1)
	p.WatchLowWatermark(ch)
	p.SetFollowerLogStart(2, 0)
	select {
	case <-ch:
	default:
		t.Fatal("a follower's first log start woke no watcher")
	}
	p.SetFollowerLogStart(2, 0)
	select {
	case <-ch:
		t.Fatal("an unchanged log start woke a watcher")
	default:
	}
	p.BecomeFollower(1)
	select {
	case <-ch:
	default:
		t.Fatal("losing the leadership woke no watcher")
	}
	if _, err := p.LowWatermark([]int32{0, 2}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("low watermark on a follower: %v, want ErrNotLeader", err)
	}
	p.UnwatchLowWatermark(ch)
}
