package partition

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// OffsetForLeaderEpoch's answer, as Kafka gives it: the largest epoch at
// or below the one asked that wrote to the log, and where its data ends.
func TestEndOffsetForEpochNamesWhereAnEpochsDataEnds(t *testing.T) {
	c := epochCache{{epoch: 1, start: 0}, {epoch: 3, start: 10}, {epoch: 4, start: 25}}
	const logEnd = 40
	for _, tt := range []struct {
		ask       int32
		epoch     int32
		endOffset int64
	}{
		{ask: 4, epoch: 4, endOffset: logEnd}, // the newest ends at the log end
		{ask: 3, epoch: 3, endOffset: 25},
		{ask: 2, epoch: 1, endOffset: 10}, // epoch 2 wrote nothing: epoch 1's end
		{ask: 1, epoch: 1, endOffset: 10},
		{ask: 0, epoch: 0, endOffset: 0}, // older than any: where the oldest starts
		{ask: 5, epoch: -1, endOffset: -1},
		{ask: -1, epoch: -1, endOffset: -1},
	} {
		epoch, end := c.endOffsetFor(tt.ask, logEnd)
		if epoch != tt.epoch || end != tt.endOffset {
			t.Errorf("epoch %d: got (%d, %d), want (%d, %d)", tt.ask, epoch, end, tt.epoch, tt.endOffset)
		}
	}
	if epoch, end := (epochCache{}).endOffsetFor(0, 5); epoch != -1 || end != -1 {
		t.Errorf("no epochs: got (%d, %d), want (-1, -1)", epoch, end)
	}
}

func TestEpochCacheTruncationKeepsOnlyEpochsInsideTheLog(t *testing.T) {
	c := epochCache{{1, 0}, {3, 10}, {4, 25}}
	c.truncateFromEnd(25)
	if want := (epochCache{{1, 0}, {3, 10}}); !equalEpochs(c, want) {
		t.Fatalf("truncated to end 25: %v, want %v", c, want)
	}
	c.truncateFromStart(12)
	if want := (epochCache{{3, 12}}); !equalEpochs(c, want) {
		t.Fatalf("start moved to 12: %v, want %v", c, want)
	}
	// An epoch that wrote nothing gives way to the next one.
	c = epochCache{{1, 0}}
	c.assign(2, 0)
	if want := (epochCache{{2, 0}}); !equalEpochs(c, want) {
		t.Fatalf("epoch 2 at the start of an empty epoch 1: %v, want %v", c, want)
	}
	if c.assign(1, 5) {
		t.Fatal("an older epoch was added after a newer one")
	}
}

func TestEpochCheckpointRejectsMalformedFiles(t *testing.T) {
	good := epochCache{{0, 0}, {2, 7}}
	got, err := decodeEpochs(good.encode())
	if err != nil || !equalEpochs(got, good) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "1\n0\n", "0\n2\n0 0\n", "0\n1\n0\n", "0\n2\n3 5\n2 9\n", "0\n2\n1 5\n2 4\n", "0\n1\n-1 0\n", "0\nx\n"} {
		if _, err := decodeEpochs([]byte(bad)); err == nil {
			t.Errorf("checkpoint %q accepted", bad)
		}
	}
}

// A new epoch's start is durable before any batch of it: after a power
// loss the checkpoint holds every epoch left in the log, and none past its
// end; a log without a checkpoint (written before it existed) is scanned.
func TestLeaderEpochsSurviveACrashAndAreRebuiltWithoutACheckpoint(t *testing.T) {
	fs := logtest.NewMemFS()
	p := advOpen(t, fs, Options{ManualFlush: true})
	advAppend(t, p, plain, "a", "b") // 0-1 at epoch 0
	advSync(t, p)
	if err := p.SetLeader(2, []int32{0}); err != nil {
		t.Fatal(err)
	}
	advAppend(t, p, plain, "c") // 2 at epoch 2
	advSync(t, p)
	if err := p.SetLeader(5, []int32{0}); err != nil {
		t.Fatal(err)
	}
	advAppend(t, p, plain, "d") // 3 at epoch 5, never synced
	crashed := fs.Crash(nil)

	reopen := func(fs *logtest.MemFS, leaderEpoch int32) *Partition {
		cfg := wlog.DefaultConfig()
		cfg.FS = fs
		p, err := OpenWith("t", 0, "/t", cfg, leaderEpoch, []int32{0}, Options{ManualFlush: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	q := reopen(crashed, 5)
	if end := q.LogEndOffset(); end != 3 {
		t.Fatalf("log end after the crash %d, want 3", end)
	}
	for ask, want := range map[int32][2]int64{0: {0, 2}, 1: {0, 2}, 2: {2, 3}, 5: {5, 3}} {
		if epoch, end := q.EndOffsetForEpoch(ask); int64(epoch) != want[0] || end != want[1] {
			t.Errorf("after the crash, epoch %d: (%d, %d), want (%d, %d)", ask, epoch, end, want[0], want[1])
		}
	}

	noFile := crashed.Clone()
	if err := noFile.Remove("/t/" + EpochCheckpointFile); err != nil {
		t.Fatal(err)
	}
	r := reopen(noFile, 5)
	if epoch, end := r.EndOffsetForEpoch(1); epoch != 0 || end != 2 {
		t.Fatalf("rebuilt from the log, epoch 1: (%d, %d), want (0, 2)", epoch, end)
	}
	if epoch, end := r.EndOffsetForEpoch(2); epoch != 2 || end != 3 {
		t.Fatalf("rebuilt from the log, epoch 2: (%d, %d), want (2, 3)", epoch, end)
	}
}

func equalEpochs(a, b epochCache) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A leader reopened at the epoch its checkpoint already names writes no
// checkpoint: a node of many partitions opens each at start, and a
// durable write per partition made its start take minutes. The entry a
// fit to an empty log end takes out is put back by the same epoch's
// start, and what the file says is what holds. A reopen at a newer epoch
// writes it.
func TestReopenedLeaderAtItsEpochWritesNoEpochCheckpoint(t *testing.T) {
	for _, records := range []int{0, 2} {
		t.Run(fmt.Sprintf("%d records", records), func(t *testing.T) {
			fs := logtest.NewMemFS()
			p := advOpen(t, fs, Options{ManualFlush: true})
			if records > 0 {
				advAppend(t, p, plain, "a", "b")
				advSync(t, p)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			var writes atomic.Int32
			fs.SetFault(func(op logtest.Op, path string) error {
				if op == logtest.OpRename && strings.HasSuffix(path, EpochCheckpointFile) {
					writes.Add(1)
				}
				return nil
			})
			p = advOpen(t, fs, Options{ManualFlush: true})
			if n := writes.Load(); n != 0 {
				t.Fatalf("reopened at the epoch its checkpoint names, the leader wrote the checkpoint %d times", n)
			}
			if e := p.LatestEpoch(); e != 0 {
				t.Fatalf("latest epoch %d after the reopen, want 0", e)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			cfg := wlog.DefaultConfig()
			cfg.FS = fs
			p, err := OpenWith("t", 0, "/t", cfg, 4, []int32{0}, Options{ManualFlush: true})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if n := writes.Load(); n != 1 {
				t.Fatalf("reopened at a newer epoch, the leader wrote the checkpoint %d times, want once", n)
			}
			data, err := fs.ReadFile("/t/" + EpochCheckpointFile)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), fmt.Sprintf("4 %d", records)) {
				t.Fatalf("checkpoint after the reopen at epoch 4:\n%s\nwant epoch 4 starting at %d", data, records)
			}
		})
	}
}
