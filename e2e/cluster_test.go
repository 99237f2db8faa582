package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/testsvc"
)

// A cluster of weir serve processes whose metadata is replicated by a
// Raft quorum of all its nodes. Every node registers as a broker, and
// partitions are placed over the registered brokers, each served by its
// leader alone.

type testCluster struct {
	t   *testing.T
	c   *testsvc.Cluster
	cls []*kgo.Client // one per node, talking to that node only
}

func startCluster(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	return startClusterWithBrokers(t, n, 0, extra...)
}

// startClusterWithBrokers starts n voters and brokersOnly broker-only
// nodes (ids n+1 on).
func startClusterWithBrokers(t *testing.T, n, brokersOnly int, extra ...string) *testCluster {
	t.Helper()
	c, err := testsvc.StartClusterWithBrokers(weirBin, t.TempDir(), n, brokersOnly, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return newTestCluster(t, c)
}

// newTestCluster wraps the running cluster c, stopped (its nodes' logs
// shown if the test failed) when the test ends.
func newTestCluster(t *testing.T, c *testsvc.Cluster) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, c: c}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for i := range c.Nodes {
				t.Logf("node %d log:\n%s", i+1, c.Log(i))
			}
		}
	})
	for _, nd := range c.Nodes {
		tc.cls = append(tc.cls, newClient(t, nd.Addr, kgo.RequestRetries(0)))
	}
	return tc
}

// seeds lists the addresses of every node of tc.
func (tc *testCluster) seeds() []string {
	var seeds []string
	for _, nd := range tc.c.Nodes {
		seeds = append(seeds, nd.Addr)
	}
	return seeds
}

// request sends req to node i alone and returns its answer.
func (tc *testCluster) request(i int, req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return tc.cls[i].SeedBrokers()[0].Request(ctx, req)
}

// brokers is the broker list of node i's Metadata.
func (tc *testCluster) brokers(i int) ([]kmsg.MetadataResponseBroker, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := tc.request(i, req, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse).Brokers, nil
}

// controllerOf is the controller node i names in DescribeCluster.
func (tc *testCluster) controllerOf(i int) (int32, error) {
	resp, err := tc.request(i, kmsg.NewPtrDescribeClusterRequest(), 2*time.Second)
	if err != nil {
		return 0, err
	}
	return resp.(*kmsg.DescribeClusterResponse).ControllerID, nil
}

// claims asks every running node which controller it knows. It fails the
// test if two nodes claim to be the controller at once.
func (tc *testCluster) claims() (leader int, named []int32) {
	tc.t.Helper()
	leader = -1
	for i := range tc.c.Nodes {
		if !tc.c.Running(i) {
			continue
		}
		id, err := tc.controllerOf(i)
		if err != nil {
			named = append(named, -2) // unreachable: not agreed yet
			continue
		}
		if id == int32(i+1) {
			if leader >= 0 {
				tc.t.Fatalf("split brain: nodes %d and %d both claim to be the active controller", leader+1, i+1)
			}
			leader = i
		}
		named = append(named, id)
	}
	return leader, named
}

// waitController waits until exactly one running node claims to be the
// controller, every running node names it, and every running node is a
// registered, unfenced broker in its image (so topics can be placed on
// all); it returns that node.
func (tc *testCluster) waitController(within time.Duration) int {
	tc.t.Helper()
	deadline := time.Now().Add(within)
	for {
		leader, named := tc.claims()
		agreed := leader >= 0
		for _, id := range named {
			agreed = agreed && id == int32(leader+1)
		}
		if agreed {
			if brokers, err := tc.brokers(leader); err == nil && tc.listsRunningNodes(brokers) {
				return leader
			}
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("no single agreed controller within %v (nodes name %v)", within, named)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listsRunningNodes reports whether brokers holds every running node.
func (tc *testCluster) listsRunningNodes(brokers []kmsg.MetadataResponseBroker) bool {
	listed := map[int32]bool{}
	for _, b := range brokers {
		listed[b.NodeID] = true
	}
	for i, nd := range tc.c.Nodes {
		if tc.c.Running(i) && !listed[nd.ID] {
			return false
		}
	}
	return true
}

// createTopic asks node i to create a one-partition topic.
func (tc *testCluster) createTopic(i int, name string) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, 15*time.Second)
	if err != nil {
		return err
	}
	r := resp.(*kmsg.CreateTopicsResponse).Topics[0]
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		return fmt.Errorf("%w: %s", err, msg)
	}
	return nil
}

// hasTopic reports whether node i's Metadata lists the topic.
func (tc *testCluster) hasTopic(i int, name string) bool {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(name)
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, 2*time.Second)
	if err != nil {
		return false
	}
	ts := resp.(*kmsg.MetadataResponse).Topics
	return len(ts) == 1 && ts[0].ErrorCode == 0 && len(ts[0].Partitions) == 1
}

// waitTopicEverywhere waits until every running node's Metadata lists the
// topics.
func (tc *testCluster) waitTopicEverywhere(within time.Duration, names ...string) {
	tc.t.Helper()
	deadline := time.Now().Add(within)
	for i := range tc.c.Nodes {
		if !tc.c.Running(i) {
			continue
		}
		for _, name := range names {
			for !tc.hasTopic(i, name) {
				if time.Now().After(deadline) {
					tc.t.Fatalf("node %d's Metadata lacks topic %q after %v", i+1, name, within)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

func TestClusterElectsOneControllerAndEveryNodeSeesItsTopics(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)
	if err := tc.createTopic(leader, "replicated"); err != nil {
		t.Fatalf("create on the controller (node %d): %v", leader+1, err)
	}
	tc.waitTopicEverywhere(10*time.Second, "replicated")
	follower := (leader + 1) % 3
	err := tc.createTopic(follower, "refused")
	if err == nil || !strings.Contains(err.Error(), "NOT_CONTROLLER") || !strings.Contains(err.Error(), fmt.Sprintf("node %d is", leader+1)) {
		t.Fatalf("create on node %d, a follower: %v; want NOT_CONTROLLER naming node %d", follower+1, err, leader+1)
	}
}

func TestClusterReplacesAKilledControllerAndTheNodeCatchesUpOnRestart(t *testing.T) {
	tc := startCluster(t, 3)
	old := tc.waitController(15 * time.Second)
	if err := tc.createTopic(old, "before-kill"); err != nil {
		t.Fatal(err)
	}
	tc.waitTopicEverywhere(10*time.Second, "before-kill")

	tc.c.Kill(old)
	killed := time.Now()
	next := tc.waitController(10 * time.Second)
	t.Logf("node %d killed; node %d became the controller after %v", old+1, next+1, time.Since(killed).Round(time.Millisecond))
	if next == old {
		t.Fatal("the killed node is still named controller")
	}
	var during []string
	for i := range 3 {
		name := fmt.Sprintf("while-down-%d", i)
		if err := tc.createTopic(next, name); err != nil {
			t.Fatalf("create on the new controller: %v", err)
		}
		during = append(during, name)
	}

	if err := tc.c.Start(old); err != nil {
		t.Fatal(err)
	}
	tc.waitTopicEverywhere(15*time.Second, append(during, "before-kill")...)
	tc.waitController(10 * time.Second)
}

func TestClusterKeepsAcknowledgedTopicsWhenEveryNodeIsKilled(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)
	var names []string
	for i := range 5 {
		name := fmt.Sprintf("durable-%d", i)
		if err := tc.createTopic(leader, name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	// Acknowledged means committed by a majority, fsynced: killing every
	// node at once loses none of it.
	for i := range 3 {
		tc.c.Kill(i)
	}
	for i := range 3 {
		if err := tc.c.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	tc.waitController(15 * time.Second)
	tc.waitTopicEverywhere(10*time.Second, names...)
}

func TestClusterControllerStoppedCleanlyHandsOverAtOnce(t *testing.T) {
	// A long election timeout: without a hand-over the others would wait
	// it out before they even campaign.
	tc := startCluster(t, 3, "--set", "controller.quorum.election.timeout.ms=3000")
	old := tc.waitController(20 * time.Second)
	start := time.Now()
	tc.c.Terminate(old)
	next := tc.waitController(10 * time.Second)
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("node %d became the controller %v after node %d was stopped with SIGTERM; a hand-over takes a few ticks", next+1, d, old+1)
	}
	if err := tc.createTopic(next, "after-handover"); err != nil {
		t.Fatal(err)
	}
}

func TestClusterWithoutAMajorityRefusesMetadataChangesAndHasNoController(t *testing.T) {
	for _, survivorLed := range []bool{false, true} {
		t.Run(fmt.Sprintf("survivor was controller %v", survivorLed), func(t *testing.T) {
			tc := startCluster(t, 3)
			leader := tc.waitController(15 * time.Second)
			survivor := (leader + 1) % 3
			if survivorLed {
				survivor = leader
			}
			for i := range 3 {
				if i != survivor {
					tc.c.Kill(i)
				}
			}
			// A controller that cannot hear a majority steps down; a
			// follower forgets its controller when its election timer fires.
			deadline := time.Now().Add(10 * time.Second)
			for {
				id, err := tc.controllerOf(survivor)
				if err == nil && id == -1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the lone survivor, node %d, still names controller %d (%v)", survivor+1, id, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			start := time.Now()
			err := tc.createTopic(survivor, "no-majority")
			if err == nil || !strings.Contains(err.Error(), "NOT_CONTROLLER") || !strings.Contains(err.Error(), "no leader") {
				t.Fatalf("create without a majority: %v; want NOT_CONTROLLER saying the quorum has no leader", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("the refusal took %v, longer than the request timeout", d)
			}
			if leader, _ := tc.claims(); leader >= 0 {
				t.Fatalf("node %d claims to be the controller without a majority", leader+1)
			}
		})
	}
}

func TestServeRefusesBadQuorumSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--voters", "1@127.0.0.1"}, "not host:port"},
		{[]string{"--voters", "1@127.0.0.1:9191,1@127.0.0.1:9192", "--controller-listen", "127.0.0.1:9191"}, "listed more than once"},
		{[]string{"--node-id", "4", "--voters", "1@127.0.0.1:9191,2@127.0.0.1:9192"}, "node.id 4 is not among controller.quorum.voters"},
		{[]string{"--node-id", "4", "--voters", "1@127.0.0.1:9191,2@127.0.0.1:9192", "--controller-listen", "0.0.0.0:9194"}, "not a wildcard"},
		{[]string{"--controller-listen", "127.0.0.1:9191"}, "controller.quorum.voters is empty"},
		{[]string{"--node-id", "1", "--voters", "1@127.0.0.1:9191"}, "controller.listeners (--controller-listen) is not set"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...)
		out, err := exec.CommandContext(ctx, weirBin, args...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("weir %s: %v, output %q; want a refusal saying %q", strings.Join(args, " "), err, out, tc.want)
		}
	}
}
