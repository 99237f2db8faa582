package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A broker-only node: its id is not among the voters, so it receives the
// metadata log as a learner of the quorum, registers and heartbeats like
// any broker, leads partitions and serves them, hosts coordinator shards,
// and never votes nor becomes the controller.

// notController fails the test if node i claims to be the controller.
func (tc *testCluster) notController(i int) {
	tc.t.Helper()
	if leader, named := tc.claims(); leader == i {
		tc.t.Fatalf("broker-only node %d claims to be the controller (nodes name %v)", i+1, named)
	}
}

// observerCaughtUp is "" when the leader's DescribeQuorum lists voters
// 1-3 and node as an observer whose log reaches the high watermark.
func (tc *testCluster) observerCaughtUp(leader int, node int32) string {
	p, err := tc.describeQuorum(leader)
	if err != nil || p.ErrorCode != 0 {
		return fmt.Sprintf("DescribeQuorum on node %d: %v, %v", leader+1, err, kerr.ErrorForCode(p.ErrorCode))
	}
	var voters []int32
	for _, v := range p.CurrentVoters {
		voters = append(voters, v.ReplicaID)
	}
	if !slices.Equal(voters, []int32{1, 2, 3}) {
		tc.t.Fatalf("DescribeQuorum's voters are %v; want [1 2 3]", voters)
	}
	for _, o := range p.Observers {
		if o.ReplicaID == node {
			if o.LogEndOffset < p.HighWatermark {
				return fmt.Sprintf("observer %d's log ends at %d, before the high watermark %d", node, o.LogEndOffset, p.HighWatermark)
			}
			return ""
		}
	}
	return fmt.Sprintf("node %d is not among the observers %+v", node, p.Observers)
}

// groupCoordinatedBy asks node i for coordinators of groups g0, g1, …
// until one is node; it fails the test if none of 200 is.
func (tc *testCluster) groupCoordinatedBy(i int, node int32) string {
	tc.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for k := 0; k < 200; {
		g := fmt.Sprintf("g%d", k)
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.CoordinatorKey, fc.CoordinatorKeys = g, []string{g}
		resp, err := tc.request(i, fc, 2*time.Second)
		if err == nil {
			r := resp.(*kmsg.FindCoordinatorResponse)
			code, id := r.ErrorCode, r.NodeID
			if len(r.Coordinators) == 1 {
				code, id = r.Coordinators[0].ErrorCode, r.Coordinators[0].NodeID
			}
			if code == 0 {
				if id == node {
					return g
				}
				k++
				continue
			}
		}
		// The first lookup creates __consumer_offsets: wait for it.
		if time.Now().After(deadline) {
			tc.t.Fatalf("node %d names no coordinator for group %s: %v", i+1, g, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tc.t.Fatalf("none of 200 groups is coordinated by node %d", node)
	return ""
}

func TestClusterBrokerOnlyNodeLeadsPartitionsAndCoordinatorsFollowsTheLogAndNeverControls(t *testing.T) {
	const session = 3000 * time.Millisecond
	tc := startClusterWithBrokers(t, 3, 1, "--set", fmt.Sprintf("broker.session.timeout.ms=%d", session.Milliseconds()),
		"--set", "broker.heartbeat.interval.ms=300")
	const bo, boID = 3, int32(4)
	ctrl := tc.waitController(20 * time.Second)
	if ctrl == bo {
		t.Fatal("the broker-only node is the controller")
	}

	// Every node's Metadata lists the four brokers.
	poll(t, 10*time.Second, func() string {
		tc.notController(bo)
		for i := range tc.c.Nodes {
			brokers, err := tc.brokers(i)
			if err != nil {
				return fmt.Sprintf("node %d: %v", i+1, err)
			}
			var ids []int32
			for _, b := range brokers {
				ids = append(ids, b.NodeID)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, []int32{1, 2, 3, 4}) {
				return fmt.Sprintf("node %d lists brokers %v", i+1, ids)
			}
		}
		return ""
	})

	// Eight partitions get leaders on all four nodes, as every node sees.
	const topic, parts = "spread", 8
	if code := tc.createPartitioned(ctrl, topic, parts, 1); code != 0 {
		t.Fatalf("create %q: %v", topic, kerr.ErrorForCode(code))
	}
	poll(t, 10*time.Second, func() string {
		tc.notController(bo)
		for i := range tc.c.Nodes {
			leaders := tc.topicLeaders(i, topic, parts)
			for _, id := range []int32{1, 2, 3, 4} {
				if !slices.Contains(leaders, id) {
					return fmt.Sprintf("node %d: partition leaders %v, none on node %d", i+1, leaders, id)
				}
			}
		}
		return ""
	})
	_, mt := tc.topicMetadata(bo, topic)
	owned := ledBy(mt, boID)

	// The broker-only node serves its partitions: produced and consumed
	// through a client that knows only its address.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	boAddr := tc.c.Nodes[bo].Addr
	pcl := newClient(t, boAddr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	var want []string
	for p := range owned {
		for k := range 3 {
			v := fmt.Sprintf("p%d/%d", p, k)
			want = append(want, v)
			if err := pcl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce to partition %d, led by node %d: %v", p, boID, err)
			}
		}
	}
	slices.Sort(want)
	consume := func() {
		t.Helper()
		offsets := map[int32]kgo.Offset{}
		for p := range owned {
			offsets[p] = kgo.NewOffset().AtStart()
		}
		ccl := newClient(t, boAddr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
		var got []string
		for len(got) < len(want) {
			fs := ccl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("read back %d of %d records: %v", len(got), len(want), err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if _, ok := owned[r.Partition]; !ok {
					t.Fatalf("record from partition %d, not led by node %d", r.Partition, boID)
				}
				got = append(got, string(r.Value))
			})
		}
		ccl.Close()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("read back %v; want %v", got, want)
		}
	}
	consume()
	poll(t, 10*time.Second, func() string { return tc.observerCaughtUp(ctrl, boID) })

	// It hosts coordinator shards: a group whose __consumer_offsets
	// partition it leads commits and fetches offsets there.
	group := tc.groupCoordinatedBy(ctrl, boID)
	adm := kadm.NewClient(newClient(t, boAddr))
	var first int32
	for p := range owned {
		first = p
		break
	}
	commit := kadm.Offsets{}
	commit.AddOffset(topic, first, 2, -1)
	if resps, err := adm.CommitOffsets(ctx, group, commit); err != nil || resps.Error() != nil {
		t.Fatalf("commit for group %q, coordinated by node %d: %v, %v", group, boID, err, resps.Error())
	}
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil || fetched.Error() != nil {
		t.Fatalf("fetch offsets of group %q: %v, %v", group, err, fetched.Error())
	}
	if o, ok := fetched.Lookup(topic, first); !ok || o.At != 2 {
		t.Fatalf("group %q's offset for partition %d: %+v (%v); want 2", group, first, o, ok)
	}

	// Killed, it is fenced within its session like any broker.
	tc.c.Kill(bo)
	poll(t, session+10*time.Second, func() string {
		tc.notController(bo)
		mr, mt := tc.topicMetadata(ctrl, topic)
		if mt == nil {
			return "no Metadata from the controller"
		}
		if slices.Contains(brokerIDs(mr), boID) {
			return fmt.Sprintf("Metadata still lists the killed node %d", boID)
		}
		if led := ledBy(mt, boID); len(led) != 0 {
			return fmt.Sprintf("the killed node still leads partitions %v", led)
		}
		return ""
	})
	if err := tc.createTopic(ctrl, "while-down"); err != nil {
		t.Fatal(err)
	}

	// Restarted on the same data, it catches up (the log it missed, the
	// topic created meanwhile) and is unfenced, leading its partitions.
	if err := tc.c.Start(bo); err != nil {
		t.Fatal(err)
	}
	poll(t, 15*time.Second, func() string {
		tc.notController(bo)
		mr, mt := tc.topicMetadata(ctrl, topic)
		if mt == nil {
			return "no Metadata from the controller"
		}
		if !slices.Contains(brokerIDs(mr), boID) {
			return fmt.Sprintf("node %d not among brokers %v after its restart", boID, brokerIDs(mr))
		}
		if led := ledBy(mt, boID); len(led) != len(owned) {
			return fmt.Sprintf("node %d leads partitions %v; want %v", boID, led, owned)
		}
		if !tc.hasTopic(bo, "while-down") {
			return "the restarted node's Metadata lacks the topic created while it was down"
		}
		return tc.observerCaughtUp(ctrl, boID)
	})
	consume()

	// The active controller killed, a voter takes over; the broker-only
	// node follows the new leader's log.
	tc.c.Kill(ctrl)
	next := tc.waitController(15 * time.Second)
	if next == bo || next == ctrl {
		t.Fatalf("node %d became the controller", next+1)
	}
	if err := tc.createTopic(next, "after-failover"); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, func() string {
		tc.notController(bo)
		if !tc.hasTopic(bo, "after-failover") {
			return "the broker-only node's Metadata lacks the topic created after the failover"
		}
		return tc.observerCaughtUp(next, boID)
	})
}
