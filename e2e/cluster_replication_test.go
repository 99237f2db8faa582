package e2e

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Replicated partitions in a three-node cluster: followers copy their
// leaders, the ISR holds every replica, and an acks=all write survives
// its leader's SIGKILL.

// partitionState is node i's Metadata for one partition of topic.
func (tc *testCluster) partitionState(i int, topic string, p int32) (kmsg.MetadataResponseTopicPartition, bool) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, 2*time.Second)
	if err != nil {
		return kmsg.MetadataResponseTopicPartition{}, false
	}
	for _, t := range resp.(*kmsg.MetadataResponse).Topics {
		for _, mp := range t.Partitions {
			if mp.Partition == p {
				return mp, true
			}
		}
	}
	return kmsg.MetadataResponseTopicPartition{}, false
}

// createReplicated creates topic with parts partitions of replication
// factor rf and min.insync.replicas minISR on the controller.
func (tc *testCluster) createReplicated(controller int, topic string, parts int32, rf int16, minISR int) {
	tc.t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, parts, rf
	c := kmsg.NewCreateTopicsRequestTopicConfig()
	c.Name, c.Value = "min.insync.replicas", kmsg.StringPtr(strconv.Itoa(minISR))
	rt.Configs = append(rt.Configs, c)
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(controller, req, 15*time.Second)
	if err != nil {
		tc.t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode); err != nil {
		tc.t.Fatalf("create %s: %v", topic, err)
	}
}

func TestClusterReplicatesPartitionsToEveryReplica(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)
	tc.createReplicated(leader, "replicated", 3, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, tc.c.Nodes[leader].Addr, kgo.DefaultProduceTopic("replicated"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const n = 300
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 3), Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("acks=all record %d: %v", i, err)
		}
	}
	// Every node lists three replicas, all in the ISR.
	for p := range int32(3) {
		st, ok := tc.partitionState(leader, "replicated", p)
		if !ok || len(st.Replicas) != 3 || len(st.ISR) != 3 {
			t.Fatalf("partition %d: %+v; want three replicas, all in the ISR", p, st)
		}
	}
	seen := map[string]int{}
	for _, r := range consumeAll(t, tc.c.Nodes[(leader+1)%3].Addr, "replicated", n) {
		seen[string(r.Value)]++
	}
	if len(seen) != n {
		t.Fatalf("read %d distinct records of %d", len(seen), n)
	}
}

// An idempotent acks=all producer runs while the leader of partition 0
// is killed with SIGKILL and restarted, several times: every record it
// was told is written is read back exactly once, in order.
func TestClusterAcknowledgedWritesSurviveLeaderKills(t *testing.T) {
	session := 2 * time.Second
	tc := startCluster(t, 3, "--set", fmt.Sprintf("broker.session.timeout.ms=%d", session.Milliseconds()),
		"--set", "broker.heartbeat.interval.ms=300", "--set", "replica.lag.time.max.ms=3000")
	leader := tc.waitController(15 * time.Second)
	tc.createReplicated(leader, "survive", 1, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sp := startSteadyProducer(t, ctx, tc.seeds(), "survive", 0, 90*time.Second)
	for round := range 3 {
		time.Sleep(time.Second)
		st, ok := tc.partitionState((leader+round)%3, "survive", 0)
		if !ok || st.Leader < 1 {
			t.Fatalf("round %d: no leader for survive-0: %+v", round, st)
		}
		victim := int(st.Leader - 1)
		t.Logf("round %d: killing the leader, node %d (epoch %d, ISR %v), %d records acknowledged", round, victim+1, st.LeaderEpoch, st.ISR, sp.ackedCount())
		tc.c.Kill(victim)
		time.Sleep(session + time.Second)
		if err := tc.c.Start(victim); err != nil {
			t.Fatal(err)
		}
		tc.waitController(30 * time.Second)
	}
	time.Sleep(time.Second)
	acked := sp.stop()
	var alive string
	for i, nd := range tc.c.Nodes {
		if tc.c.Running(i) {
			alive = nd.Addr
		}
	}
	checkAckedReadOnceInOrder(t, alive, "survive", 0, acked)
}

// Two of three nodes killed: the survivor, leader of the partition,
// acknowledges no acks=all write (its followers hold nothing new, and
// with the quorum lost nothing can shrink the ISR); once they return the
// partition takes writes again, and what was acknowledged before is all
// there.
func TestClusterSurvivorOfTwoLostNodesAcknowledgesNoAcksAllWrite(t *testing.T) {
	tc := startCluster(t, 3, "--set", "replica.lag.time.max.ms=2000")
	ctrl := tc.waitController(15 * time.Second)
	tc.createReplicated(ctrl, "lost-two", 1, 3, 2)
	st, _ := tc.partitionState(ctrl, "lost-two", 0)
	survivor := int(st.Leader - 1)
	addr := tc.c.Nodes[survivor].Addr
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := newClient(t, addr, kgo.DefaultProduceTopic("lost-two"))
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range tc.c.Nodes {
		if i != survivor {
			tc.c.Kill(i)
		}
	}
	// Not idempotent: franz-go never gives up on an idempotent batch in
	// flight, and the question is only whether the broker acknowledges.
	short := newClient(t, addr, kgo.DefaultProduceTopic("lost-two"), kgo.ProduceRequestTimeout(2*time.Second),
		kgo.RecordDeliveryTimeout(6*time.Second), kgo.DisableIdempotentWrite())
	for i := 20; i < 22; i++ {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		err := short.ProduceSync(sctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr()
		scancel()
		if err == nil {
			t.Fatalf("record %d was acknowledged at acks=all by the only live replica", i)
		}
	}
	for i := range tc.c.Nodes {
		if i != survivor {
			if err := tc.c.Start(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	tc.waitController(30 * time.Second)
	seeds := tc.seeds()
	again := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("lost-two"))
	if err := again.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("after the nodes returned: %v", err)
	}
	seen := map[string]bool{}
	for _, r := range consumeAll(t, seeds[0], "lost-two", 21) {
		seen[string(r.Value)] = true
	}
	for i := range 20 {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("acknowledged record %d lost", i)
		}
	}
}
