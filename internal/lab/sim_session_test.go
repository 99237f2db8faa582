package lab

import (
	"context"
	"strings"
	"testing"
	"time"
)

// waitSent waits until the session has sent n records.
func waitSent(t *testing.T, ss *Session, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st := ss.Snapshot(); st.Tally.Sent >= n {
			return
		} else if st.Error != "" {
			t.Fatalf("session failed: %s", st.Error)
		}
	}
	t.Fatalf("fewer than %d records sent in 30s", n)
}

// A consumer that commits before processing, killed halfway through a
// batch, loses the rest of that batch: the session's live tally counts
// it as the lab's checker does over the worker's effects file, and the
// verdict is at-most-once held (nothing duplicated).
func TestSessionConsumerKilledMidBatchIsCountedAsTheCheckerCounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ss, err := StartSession(ctx, weirBin, SimSettings{Acks: "all", Retries: true, Idempotent: true, MaxInFlight: 5, Commit: "before", Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	waitSent(t, ss, 40)
	// The worker takes a moment to install its signal handler.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := ss.Inject(ctx, SimKillConsumer)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	at := ss.Snapshot().Tally.Sent
	for deadline := time.Now().Add(30 * time.Second); ss.Snapshot().WorkerGen < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the consumer worker was not killed:\n%v", ss.Snapshot().Events)
		}
	}
	waitSent(t, ss, at+40)
	ss.Stop(ctx)
	st := ss.Snapshot()
	if st.State != SimDone || st.Final == nil {
		t.Fatalf("state %s (%s), events:\n%v", st.State, st.Error, st.Events)
	}
	if st.Final.Tally != st.Final.Checker {
		t.Errorf("live tally %+v, the checker over the logs %+v", st.Final.Tally, st.Final.Checker)
	}
	if st.Final.Tally.Lost < 1 || st.Final.Tally.Duplicated != 0 {
		t.Errorf("commit before processing, killed mid-batch: lost %d duplicated %d, want some lost and none duplicated", st.Final.Tally.Lost, st.Final.Tally.Duplicated)
	}
	if st.Claim != "at-most-once" || len(st.Final.Violations) != 0 {
		t.Errorf("claim %s, violations %v; want at-most-once held", st.Claim, st.Final.Violations)
	}
}

// A cluster session runs one node fault at a time: while "kill two
// nodes" has them down, "kill the leader" is refused with the reason.
// Once they are back the session ends with nothing acknowledged lost
// (acks=all, min.insync.replicas=2), the leader's refusals counted
// (REQUEST_TIMED_OUT while its ISR cannot shrink, NOT_ENOUGH_REPLICAS
// once it is below min.insync.replicas), and the live tally equal to the
// checker's over the logs.
func TestClusterSessionRunsOneNodeFaultAtATime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ss, err := StartSession(ctx, weirBin, SimSettings{Acks: "all", Retries: true, Idempotent: true, MaxInFlight: 5, Commit: "after", Dedup: true, Seed: 4, Cluster: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	if err := ss.Inject(ctx, SimKillBroker); err == nil {
		t.Error("a cluster session took \"kill the broker\"; want it refused for the node faults")
	}
	waitSent(t, ss, 40)
	if err := ss.Inject(ctx, SimKillTwo); err != nil {
		t.Fatal(err)
	}
	if err := ss.Inject(ctx, SimKillLeader); err == nil || !strings.Contains(err.Error(), "under way") {
		t.Errorf("kill the leader while two nodes are down: %v; want it refused", err)
	}
	var st SimState
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if st = ss.Snapshot(); st.BrokerUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes are not back:\n%s", strings.Join(st.Events, "\n"))
		}
	}
	for _, n := range st.Nodes {
		if !n.Up {
			t.Errorf("node %d is down once the fault is over: %+v", n.ID, st.Nodes)
		}
	}
	waitSent(t, ss, st.Tally.Sent+20)
	ss.Stop(ctx)
	st = ss.Snapshot()
	if st.State != SimDone || st.Final == nil {
		t.Fatalf("state %s (%s), events:\n%s", st.State, st.Error, strings.Join(st.Events, "\n"))
	}
	if st.Final.Tally != st.Final.Checker {
		t.Errorf("live tally %+v, the checker over the logs %+v", st.Final.Tally, st.Final.Checker)
	}
	if st.Final.Tally.Lost != 0 {
		t.Errorf("acks=all, min.insync.replicas=2: %d acknowledged records lost", st.Final.Tally.Lost)
	}
	if !strings.Contains(st.Refused, "NOT_ENOUGH_REPLICAS") && !strings.Contains(st.Refused, "REQUEST_TIMED_OUT") {
		t.Errorf("the nodes answered the producer with %q; want writes refused while two of three are down", st.Refused)
	}
}
