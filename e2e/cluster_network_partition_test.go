package e2e

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/testsvc"
)

// A network partition: the leader of a partition is cut off from the two
// other nodes (each node runs in its own network namespace; the cut is a
// blackhole route on both sides) while clients still reach it, then
// healed. While cut off it acknowledges no acks=all write, a new leader
// takes over on the majority side, and after healing nothing
// acknowledged is lost or doubled, the replicas hold the same log, and
// the old leader is back in the ISR.

// startClusterInNamespaces starts n nodes, each in its own network
// namespace, so the test can cut them apart.
func startClusterInNamespaces(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	c, err := testsvc.StartClusterInNamespaces(weirBin, t.TempDir(), n, extra...)
	if errors.Is(err, testsvc.ErrNoNamespaces) {
		t.Skipf("cannot partition the network here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return newTestCluster(t, c)
}

// produceRaw sends one non-idempotent acks=all batch holding value to
// partition p on node i alone, waiting for the broker at most timeout,
// and returns the partition's error code, or err if no answer came.
func (tc *testCluster) produceRaw(i int, topic string, p int32, value string, timeout time.Duration) (int16, error) {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, int32(timeout.Milliseconds())
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = p
	rp.Records = batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Timestamp: time.Now().UnixMilli()},
		[]batch.Record{{Value: []byte(value)}})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, timeout+5*time.Second)
	if err != nil {
		return 0, err
	}
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode, nil
}

// checkNowhere fails the test if any replica's log of partition p holds
// a record whose value starts with prefix.
func (tc *testCluster) checkNowhere(topic string, p int32, prefix string) {
	tc.t.Helper()
	for i, nd := range tc.c.Nodes {
		batches, err := replicaLog(nd, topic, p)
		if err != nil {
			tc.t.Fatal(err)
		}
		for _, b := range batches {
			if bytes.Contains(b.raw, []byte(prefix)) {
				tc.t.Fatalf("node %d still holds a write the deposed leader took (%q), at offset %d", i+1, prefix, b.base)
			}
		}
	}
}

// heldBy reports whether node i's log of partition p holds a record whose
// value starts with prefix.
func (tc *testCluster) heldBy(i int, topic string, p int32, prefix string) bool {
	batches, _ := replicaLog(tc.c.Nodes[i], topic, p)
	for _, b := range batches {
		if bytes.Contains(b.raw, []byte(prefix)) {
			return true
		}
	}
	return false
}

func TestClusterLeaderCutOffFromItsFollowersAcknowledgesNothingAndRejoinsAfterHealing(t *testing.T) {
	// The cut-off leader is a broker alone, or also the active controller,
	// which then loses the metadata quorum too.
	for _, alsoController := range []bool{false, true} {
		name := "leader"
		if alsoController {
			name = "leader-and-controller"
		}
		t.Run(name, func(t *testing.T) { cutOffLeader(t, alsoController) })
	}
}

func cutOffLeader(t *testing.T, alsoController bool) {
	tc := startClusterInNamespaces(t, 3, "--set", "broker.session.timeout.ms=2000",
		"--set", "broker.heartbeat.interval.ms=300", "--set", "replica.lag.time.max.ms=3000")
	ctrl := tc.waitController(15 * time.Second)
	const topic = "cut"
	tc.createReplicated(ctrl, topic, 3, 3, 2)
	p, st := tc.pickLeader(ctrl, topic, 3, alsoController)
	victim := int(st.Leader - 1)
	if (victim == ctrl) != alsoController {
		t.Skipf("no partition of %s fits: every leader is the controller, node %d, or none is (want it to be: %v)", topic, ctrl+1, alsoController)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sp := startSteadyProducer(t, ctx, tc.seeds(), topic, p, 45*time.Second)
	sp.waitAcked(200, 20*time.Second)

	t.Logf("cutting the leader of %s-%d, node %d (epoch %d), off from the others; %d records acknowledged", topic, p, victim+1, st.LeaderEpoch, sp.ackedCount())
	if err := tc.c.Isolate(victim); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			_ = tc.c.Rejoin(victim)
		}
	}()

	// Writes sent to the cut-off leader for as long as the cut lasts: not
	// one may be acknowledged.
	stopZombie := make(chan struct{})
	var zwg sync.WaitGroup
	var zmu sync.Mutex
	answers := map[string]int{}
	zwg.Add(1)
	go func() {
		defer zwg.Done()
		for k := 0; ; k++ {
			select {
			case <-stopZombie:
				return
			default:
			}
			code, err := tc.produceRaw(victim, topic, p, "cut-off-"+strconv.Itoa(k), 2*time.Second)
			zmu.Lock()
			switch {
			case err != nil:
				answers["no answer"]++
			case code == 0:
				answers["acknowledged"]++
			default:
				answers[kerr.ErrorForCode(code).Error()]++
			}
			zmu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()

	leader := tc.waitLeaderElsewhere(topic, p, victim, st.LeaderEpoch, 30*time.Second)
	sp.waitAcked(100, 30*time.Second) // the majority side takes writes
	t.Logf("node %d leads on the majority side; %d records acknowledged", leader+1, sp.ackedCount())
	time.Sleep(2 * time.Second) // the old leader stays cut off a while longer
	close(stopZombie)
	zwg.Wait()
	t.Logf("writes to the cut-off leader: %v; its log holds some: %v", answers, tc.heldBy(victim, topic, p, "cut-off-"))
	if answers["acknowledged"] > 0 {
		t.Fatalf("the cut-off leader, node %d, acknowledged %d acks=all writes", victim+1, answers["acknowledged"])
	}

	if err := tc.c.Rejoin(victim); err != nil {
		t.Fatal(err)
	}
	healed = true
	tc.waitFullISR(leader, topic, p, 30*time.Second)
	sp.waitAcked(100, 20*time.Second)
	acked := sp.stop()
	checkAckedReadOnceInOrder(t, tc.c.Nodes[leader].Addr, topic, p, acked)
	tc.waitIdenticalLogs(topic, p, 30*time.Second)
	tc.checkNowhere(topic, p, "cut-off-")
}
