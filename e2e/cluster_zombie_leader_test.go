package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A zombie leader: the leader of a partition is frozen with SIGSTOP for
// longer than the broker session timeout, so the controller fences it and
// elects another replica; then it runs again, still believing it leads.
// A write sent to it in that window is not acknowledged at acks=all (its
// followers now fetch from the new leader, so its high watermark cannot
// pass the write), what it appended is truncated away when it learns it
// is a follower, every replica ends with the same batches at the same
// offsets, and the idempotent producer running throughout loses and
// doubles nothing. In the second case the node is also cut off from the
// others while frozen and for a while after it runs again, so it cannot
// learn of the new leader and takes writes into a tail that diverges from
// the new leader's log, until the network heals.

// zombieValue prefixes the writes sent to the deposed leader, so the test
// can look for them in every replica's log.
const zombieValue = "zombie-write-"

// leaderNotController returns a partition of topic (of parts) whose
// leader is not node ctrl, the active controller, when there is one, so
// freezing the leader does not also stall the metadata quorum; and its
// state.
func (tc *testCluster) leaderNotController(ctrl int, topic string, parts int32) (int32, kmsg.MetadataResponseTopicPartition) {
	return tc.pickLeader(ctrl, topic, parts, false)
}

// pickLeader returns a partition of topic (of parts), and its state,
// whose leader is node ctrl (onController) or another node (not), or any
// partition when none is.
func (tc *testCluster) pickLeader(ctrl int, topic string, parts int32, onController bool) (int32, kmsg.MetadataResponseTopicPartition) {
	tc.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var first kmsg.MetadataResponseTopicPartition
		led := 0
		for p := range parts {
			st, ok := tc.partitionState(ctrl, topic, p)
			if !ok || st.Leader < 1 {
				continue
			}
			led++
			if (int(st.Leader-1) == ctrl) == onController {
				return p, st
			}
			first = st
		}
		if led == int(parts) {
			return first.Partition, first
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("%s: %d of %d partitions have a leader", topic, led, parts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestClusterFrozenLeaderAcknowledgesNothingOnceReplacedAndIsTruncated(t *testing.T) {
	for _, heldBack := range []bool{false, true} {
		name := "resumed"
		if heldBack {
			name = "resumed-before-it-hears-of-the-new-leader"
		}
		t.Run(name, func(t *testing.T) { frozenLeader(t, heldBack) })
	}
}

func frozenLeader(t *testing.T, heldBack bool) {
	settings := []string{"--set", "broker.session.timeout.ms=2000",
		"--set", "broker.heartbeat.interval.ms=300", "--set", "replica.lag.time.max.ms=3000"}
	var tc *testCluster
	if heldBack {
		tc = startClusterInNamespaces(t, 3, settings...)
	} else {
		tc = startCluster(t, 3, settings...)
	}
	ctrl := tc.waitController(15 * time.Second)
	const topic = "zombie"
	tc.createReplicated(ctrl, topic, 3, 3, 2)
	p, st := tc.leaderNotController(ctrl, topic, 3)
	victim := int(st.Leader - 1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sp := startSteadyProducer(t, ctx, tc.seeds(), topic, p, 45*time.Second)
	sp.waitAcked(200, 20*time.Second)

	t.Logf("freezing the leader of %s-%d, node %d (epoch %d), %d records acknowledged", topic, p, victim+1, st.LeaderEpoch, sp.ackedCount())
	if err := tc.c.Pause(victim); err != nil {
		t.Fatal(err)
	}
	resumed, healed := false, !heldBack
	defer func() {
		if !resumed {
			_ = tc.c.Resume(victim) // so the cleanup's SIGKILL is not held up
		}
		if !healed {
			_ = tc.c.Rejoin(victim)
		}
	}()
	if heldBack {
		if err := tc.c.Isolate(victim); err != nil {
			t.Fatal(err)
		}
	}
	leader := tc.waitLeaderElsewhere(topic, p, victim, st.LeaderEpoch, 30*time.Second)
	sp.waitAcked(100, 30*time.Second) // the new leader takes writes
	t.Logf("node %d leads now; %d records acknowledged", leader+1, sp.ackedCount())

	// The first write to the frozen leader waits in its socket and is the
	// first thing it reads when it runs again; the others follow while it
	// may still believe it leads.
	type answer struct {
		code int16
		err  error
	}
	zombie := make(chan answer, 1)
	go func() {
		code, err := tc.produceRaw(victim, topic, p, zombieValue+"0", 3*time.Second)
		zombie <- answer{code, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := tc.c.Resume(victim); err != nil {
		t.Fatal(err)
	}
	resumed = true
	answers := []answer{<-zombie}
	for k := 1; k < 4; k++ {
		code, err := tc.produceRaw(victim, topic, p, zombieValue+strconv.Itoa(k), 3*time.Second)
		answers = append(answers, answer{code, err})
	}
	for k, a := range answers {
		switch {
		case a.err != nil:
			t.Logf("write %d to the deposed leader: no answer: %v", k, a.err)
		case a.code == 0:
			t.Fatalf("the deposed leader, node %d, acknowledged acks=all write %d after node %d replaced it", victim+1, k, leader+1)
		default:
			t.Logf("write %d to the deposed leader: %v", k, kerr.ErrorForCode(a.code))
		}
	}
	if heldBack {
		t.Logf("the deposed leader's log holds writes sent to it: %v", tc.heldBy(victim, topic, p, zombieValue))
		if err := tc.c.Rejoin(victim); err != nil {
			t.Fatal(err)
		}
		healed = true
	}

	// It rejoins as a follower, and the partition keeps taking writes.
	tc.waitFullISR(leader, topic, p, 30*time.Second)
	sp.waitAcked(100, 20*time.Second)
	acked := sp.stop()
	checkAckedReadOnceInOrder(t, tc.c.Nodes[leader].Addr, topic, p, acked)
	tc.waitIdenticalLogs(topic, p, 30*time.Second)
	tc.checkNowhere(topic, p, zombieValue)
}
