package controller

import (
	"context"
	"testing"
	"time"
)

// The leader's status lists every voter with its match index and last
// contact; a follower's names the leader and nothing else; a stopped
// voter falls behind while the high watermark moves on.
func TestQuorumStatusOfLeaderAndFollowers(t *testing.T) {
	q := newTestQuorum(t, 3, nil)
	l := q.leader()
	ctx := context.Background()

	st, err := q.nodes[l].QuorumStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Leading || st.LeaderID != int32(l+1) || st.LeaderEpoch < 1 || st.HighWatermark < 1 || len(st.Voters) != 3 {
		t.Fatalf("leader's status %+v", st)
	}
	for _, v := range st.Voters {
		if v.Addr != q.addrs[v.NodeID-1] {
			t.Errorf("voter %d: address %q, want %q", v.NodeID, v.Addr, q.addrs[v.NodeID-1])
		}
	}
	for i, c := range q.nodes {
		if i == l {
			continue
		}
		fs, err := c.QuorumStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fs.Leading || fs.LeaderID != int32(l+1) || fs.Voters[0].LogEndOffset != -1 {
			t.Fatalf("follower %d's status %+v", i+1, fs)
		}
	}

	stopped := (l + 1) % 3
	q.stop(stopped)
	if _, _, err := q.nodes[l].CreateTopic(CreateTopic{Name: "after-stop", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	live := 3 - l - stopped // the third node's index
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = q.nodes[l].QuorumStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		down, up := st.Voters[stopped], st.Voters[live]
		if up.LogEndOffset >= st.HighWatermark && up.LastCaughtUpMs > 0 && down.LogEndOffset < st.HighWatermark {
			if now := time.Now().UnixMilli(); now-up.LastFetchMs > 5000 {
				t.Fatalf("the live follower was last heard from %dms ago", now-up.LastFetchMs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after node %d stopped: %+v", stopped+1, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
