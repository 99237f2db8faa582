package e2e

import (
	"syscall"
	"testing"
	"time"
)

// SIGTERM exits promptly, also while the node's transaction coordinator
// is loading and its recovery waits on a partition leader that does not
// answer (stopped, within its session): the start is cut short.
func TestClusterSIGTERMIsPromptWhileACoordinatorLoadWaitsOnAStoppedLeader(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal,
		"--set", "broker.session.timeout.ms=60000",
		"--set", "broker.heartbeat.interval.ms=300")...)
	leader := tc.waitController(15 * time.Second)
	const topic = "adv2-sigterm-load"
	leaders := tc.createTopicN(leader, topic, 6)
	const id = "adv2-sigterm-load-id"
	coord := tc.coordinatorOf(leader, 1, id)
	_, r := partitionsLedBy(t, leaders, coord)
	x := tc.rawInit(id, coord, topic, leaders)
	x.add(r)
	if err := x.produce(r, "v"); err != nil {
		t.Fatal(err)
	}
	vpid := pidOf(t, tc.c.Nodes[leaders[r]-1].DataDir)
	if err := syscall.Kill(vpid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(vpid, syscall.SIGCONT)
	if err := x.end(true); err != nil { // prepared; its markers wait on the stopped node
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	tc.c.Kill(int(coord - 1))
	if err := tc.c.Start(int(coord - 1)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the restarted coordinator's recovery now waits on the stopped node
	start := time.Now()
	tc.c.Terminate(int(coord - 1))
	took := time.Since(start)
	if took > 3*time.Second {
		t.Fatalf("node %d took %v to exit on SIGTERM while its coordinator's recovery waited on stopped node %d", coord, took.Round(100*time.Millisecond), leaders[r])
	}
	t.Logf("exited in %v", took.Round(10*time.Millisecond))
}
