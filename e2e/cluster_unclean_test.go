package e2e

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Unclean leader election, measured. A partition with two replicas and
// min.insync.replicas 1 loses its follower, takes more acks=all writes on
// the leader alone (the ISR is just the leader), then loses the leader
// while the old follower comes back. With unclean.leader.election.enable
// off the partition has no leader until the leader returns, and nothing
// acknowledged is lost; on, the old follower leads at once and the writes
// only the lost leader held are gone — the test counts them.
func TestClusterUncleanElectionTradesAcknowledgedWritesForAvailability(t *testing.T) {
	for _, unclean := range []bool{false, true} {
		t.Run(fmt.Sprintf("unclean=%v", unclean), func(t *testing.T) {
			session := 2 * time.Second
			tc := startCluster(t, 3, "--set", fmt.Sprintf("broker.session.timeout.ms=%d", session.Milliseconds()),
				"--set", "broker.heartbeat.interval.ms=300", "--set", "replica.lag.time.max.ms=1500",
				"--set", "unclean.leader.election.enable="+strconv.FormatBool(unclean))
			ctrl := tc.waitController(15 * time.Second)
			tc.createReplicated(ctrl, "unclean", 1, 2, 1)
			st, _ := tc.partitionState(ctrl, "unclean", 0)
			leader, follower := int(st.Leader-1), -1
			for _, r := range st.Replicas {
				if int(r-1) != leader {
					follower = int(r - 1)
				}
			}
			var seeds []string
			for _, nd := range tc.c.Nodes {
				seeds = append(seeds, nd.Addr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			produce := func(from, to int) {
				cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("unclean"), kgo.RecordRetries(50))
				for i := from; i < to; i++ {
					if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
						t.Fatalf("acks=all record %d: %v", i, err)
					}
				}
				cl.Close()
			}
			produce(0, 50) // on both replicas
			tc.c.Kill(follower)
			produce(50, 100) // acknowledged once the ISR is the leader alone
			tc.c.Kill(leader)
			if err := tc.c.Start(follower); err != nil {
				t.Fatal(err)
			}
			alive := tc.c.Nodes[follower].Addr
			deadline := time.Now().Add(3*session + 5*time.Second)
			led := false
			for time.Now().Before(deadline) && !led {
				if st, ok := tc.partitionState(follower, "unclean", 0); ok && st.Leader == int32(follower+1) {
					led = true
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !unclean {
				if led {
					t.Fatal("with unclean election off, the out-of-sync replica was elected")
				}
				if err := tc.c.Start(leader); err != nil {
					t.Fatal(err)
				}
				seen := map[string]bool{}
				for _, r := range consumeAll(t, alive, "unclean", 100) {
					seen[string(r.Value)] = true
				}
				if len(seen) != 100 {
					t.Fatalf("after the ISR member returned, %d of 100 acknowledged records are readable", len(seen))
				}
				return
			}
			if !led {
				t.Fatal("with unclean election on, the live replica did not take the partition")
			}
			produce(100, 110) // available again
			// Read the whole log, up to its end: what is not there by
			// then is lost, not late (a slow machine must not count a
			// slow read as loss).
			ends, err := newAdmin(t, alive).ListEndOffsets(ctx, "unclean")
			if err != nil {
				t.Fatal(err)
			}
			end, _ := ends.Lookup("unclean", 0)
			pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer pcancel()
			cl := newClient(t, alive, kgo.ConsumeTopics("unclean"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			seen := map[int]bool{}
			next := int64(0)
			for next < end.Offset {
				if pctx.Err() != nil {
					t.Fatalf("read up to offset %d of the log ending at %d within 30 s", next, end.Offset)
				}
				cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
					v, _ := strconv.Atoi(string(r.Value))
					seen[v] = true
					next = max(next, r.Offset+1)
				})
			}
			lost := 0
			for i := range 110 {
				if !seen[i] {
					lost++
				}
			}
			t.Logf("unclean election: %d of 110 acknowledged records lost (those written while the ISR was the lost leader alone: 50)", lost)
			if lost == 0 || lost > 50 {
				t.Fatalf("lost %d acknowledged records; want some, at most the 50 only the lost leader held", lost)
			}
		})
	}
}
