package partition

import (
	"testing"
	"time"

	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// A leader restarted with followers starts its high watermark at its log
// start, below the one it published before, until the followers fetch
// at its new epoch. Until its high watermark reaches the start of that
// epoch it says the high watermark is not established, so ListOffsets
// answers OFFSET_NOT_AVAILABLE (KIP-207) rather than an offset below what
// readers already consumed as committed (a consumer resetting to latest
// would read it all again).
func TestARestartedLeaderDoesNotAnswerAHighWatermarkBelowTheOneItPublished(t *testing.T) {
	fs := logtest.NewMemFS()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	cfg.Now = func() time.Time { return time.UnixMilli(1000) }
	l, err := OpenWith("t", 0, "/l", cfg, 1, []int32{0, 1}, Options{ManualFlush: true, ReplicaID: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a0", "a1", "a2", "a3", "a4"} {
		advAppend(t, l, plain, v)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.UpdateFollower(1, -1, 5, l.LatestEpoch(), 1000); err != nil {
		t.Fatal(err)
	}
	published := l.HighWatermark()
	if published != 5 || !l.HighWatermarkEstablished() {
		t.Fatalf("setup: high watermark %d (established %v), want 5", published, l.HighWatermarkEstablished())
	}

	// SIGKILL: everything written stays; the process starts again and
	// leads at the next epoch its registration brings.
	cfg.FS = fs.Clone()
	l2, err := OpenWith("t", 0, "/l", cfg, 2, []int32{0, 1}, Options{ManualFlush: true, ReplicaID: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if hw := l2.HighWatermark(); hw < published && l2.HighWatermarkEstablished() {
		t.Fatalf("the restarted leader's high watermark is %d, below the %d it published before, and it says it is established", hw, published)
	}
	if _, err := l2.UpdateFollower(1, -1, 5, l2.LatestEpoch(), 1000); err != nil {
		t.Fatal(err)
	}
	if hw := l2.HighWatermark(); hw != published || !l2.HighWatermarkEstablished() {
		t.Fatalf("after the follower fetched at the new epoch: high watermark %d (established %v), want %d", hw, l2.HighWatermarkEstablished(), published)
	}
}
