package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Placement and routing in a three-node cluster: every node registers,
// a topic's partition leaders are spread over all of them, clients
// follow the leaders from any bootstrap node, and a node serves only the
// partitions it leads.

// topicLeaders is node i's Metadata for topic: the leader of each
// partition, or nil while the topic is not complete there.
func (tc *testCluster) topicLeaders(i int, topic string, partitions int) []int32 {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, 2*time.Second)
	if err != nil {
		return nil
	}
	ts := resp.(*kmsg.MetadataResponse).Topics
	if len(ts) != 1 || ts[0].ErrorCode != 0 || len(ts[0].Partitions) != partitions {
		return nil
	}
	leaders := make([]int32, partitions)
	for _, p := range ts[0].Partitions {
		if !slices.Equal(p.Replicas, []int32{p.Leader}) || !slices.Equal(p.ISR, []int32{p.Leader}) {
			tc.t.Fatalf("node %d: partition %d has leader %d, replicas %v, ISR %v; want replicas and ISR [leader]", i+1, p.Partition, p.Leader, p.Replicas, p.ISR)
		}
		leaders[p.Partition] = p.Leader
	}
	return leaders
}

func TestClusterSpreadsPartitionLeadersAndClientsFollowThem(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)

	// Every node lists the three registered brokers at their Kafka
	// addresses, in Metadata and in DescribeCluster.
	for i := range 3 {
		brokers, err := tc.brokers(i)
		deadline := time.Now().Add(10 * time.Second)
		for err == nil && len(brokers) < 3 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			brokers, err = tc.brokers(i)
		}
		if err != nil || len(brokers) != 3 {
			t.Fatalf("node %d's Metadata lists brokers %+v (%v); want 3", i+1, brokers, err)
		}
		for _, br := range brokers {
			if want := tc.c.Nodes[br.NodeID-1].Addr; net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port))) != want {
				t.Fatalf("node %d lists broker %d at %s:%d; want %s", i+1, br.NodeID, br.Host, br.Port, want)
			}
		}
		dc, err := tc.request(i, kmsg.NewPtrDescribeClusterRequest(), 2*time.Second)
		if err != nil || len(dc.(*kmsg.DescribeClusterResponse).Brokers) != 3 {
			t.Fatalf("node %d's DescribeCluster: %+v (%v); want 3 brokers", i+1, dc, err)
		}
	}

	// Twelve partitions: leaders on all three nodes, the same on each.
	const topic, parts = "spread", 12
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, parts, 1
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(leader, req, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create %q: %v", topic, kerr.ErrorForCode(code))
	}
	var leaders []int32
	for i := range 3 {
		deadline := time.Now().Add(10 * time.Second)
		var got []int32
		for got = tc.topicLeaders(i, topic, parts); got == nil; got = tc.topicLeaders(i, topic, parts) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d's Metadata lacks the %d partitions of %q", i+1, parts, topic)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if leaders == nil {
			leaders = got
		} else if !slices.Equal(got, leaders) {
			t.Fatalf("node %d names leaders %v; another node %v", i+1, got, leaders)
		}
	}
	for n := int32(1); n <= 3; n++ {
		if !slices.Contains(leaders, n) {
			t.Fatalf("no partition of %q is led by node %d: leaders %v", topic, n, leaders)
		}
	}

	// A replication factor above the registered brokers is refused.
	rt.Topic, rt.ReplicationFactor = "too-many-replicas", 4
	req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
	if resp, err = tc.request(leader, req, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code != kerr.InvalidReplicationFactor.Code {
		t.Fatalf("replication factor 4 on 3 brokers: %v; want INVALID_REPLICATION_FACTOR", kerr.ErrorForCode(code))
	}

	// A client bootstrapped from each node produces to every partition
	// (acks=all, idempotent) and reads everything back through another.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const perPartition = 5
	var want []string
	for i := range 3 {
		pcl := newClient(t, tc.c.Nodes[i].Addr, kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
		var recs []*kgo.Record
		for p := range int32(parts) {
			for k := range perPartition {
				v := fmt.Sprintf("via-%d/p%d/%d", i+1, p, k)
				recs = append(recs, &kgo.Record{Partition: p, Value: []byte(v)})
				want = append(want, v)
			}
		}
		if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce through node %d: %v", i+1, err)
		}
	}
	ccl := newClient(t, tc.c.Nodes[(leader+1)%3].Addr, kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	seen := map[int32]bool{}
	for len(got) < len(want) {
		fs := ccl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), len(want), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got = append(got, string(r.Value))
			seen[r.Partition] = true
		})
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read back %d records, not the %d produced (first: %v)", len(got), len(want), got[:min(len(got), 5)])
	}
	if len(seen) != parts {
		t.Fatalf("records came from %d partitions; want %d", len(seen), parts)
	}

	// A node answers NOT_LEADER_OR_FOLLOWER for a partition another leads:
	// produce, fetch and list offsets alike.
	p := int32(slices.IndexFunc(leaders, func(l int32) bool { return l != int32(leader+1) }))
	other := leader // the controller's node index; another node leads p
	checkNotLeader := func(what string, code int16) {
		t.Helper()
		if code != kerr.NotLeaderForPartition.Code {
			t.Fatalf("%s of partition %d (led by node %d) on node %d: %v; want NOT_LEADER_OR_FOLLOWER", what, p, leaders[p], other+1, kerr.ErrorForCode(code))
		}
	}
	preq := kmsg.NewPtrProduceRequest()
	preq.Acks, preq.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = topic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition, pp.Records = p, goodBatch()
	pt.Partitions = append(pt.Partitions, pp)
	preq.Topics = append(preq.Topics, pt)
	presp, err := tc.request(other, preq, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkNotLeader("produce", presp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode)

	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := tc.request(other, mreq, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	freq := kmsg.NewPtrFetchRequest()
	freq.MaxWaitMillis, freq.MaxBytes = 0, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, mresp.(*kmsg.MetadataResponse).Topics[0].TopicID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.PartitionMaxBytes = p, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	fresp, err := tc.request(other, freq, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkNotLeader("fetch", fresp.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode)

	lreq := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition, lp.Timestamp = p, -1
	lt.Partitions = append(lt.Partitions, lp)
	lreq.Topics = append(lreq.Topics, lt)
	lresp, err := tc.request(other, lreq, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkNotLeader("list offsets", lresp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode)
}

// Every node names the same coordinator for a group, and a consumer group
// whose members bootstrap from different nodes reads each record once.
func TestClusterNamesOneCoordinatorPerGroupOnEveryNode(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)
	const topic, parts = "grouped", 6
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, parts, 1
	req.Topics = append(req.Topics, rt)
	if _, err := tc.request(leader, req, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pcl := newClient(t, tc.c.Nodes[leader].Addr, kgo.DefaultProduceTopic(topic))
	const n = 60
	for i := range n {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The first lookup, on the controller, creates __consumer_offsets.
	var named []int32
	for _, i := range []int{leader, (leader + 1) % 3, (leader + 2) % 3} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			fc := kmsg.NewPtrFindCoordinatorRequest()
			fc.CoordinatorKey, fc.CoordinatorKeys = "g", []string{"g"}
			resp, err := tc.request(i, fc, 2*time.Second)
			if err == nil {
				r := resp.(*kmsg.FindCoordinatorResponse)
				code, node := r.ErrorCode, r.NodeID
				if len(r.Coordinators) == 1 {
					code, node = r.Coordinators[0].ErrorCode, r.Coordinators[0].NodeID
				}
				if code == 0 {
					named = append(named, node)
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d names no coordinator for group g: %+v %v", i+1, resp, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if named[0] != named[1] || named[0] != named[2] {
		t.Fatalf("nodes name coordinators %v for one group", named)
	}
	seen := map[string]int{}
	var consumers []*kgo.Client
	for _, i := range []int{(leader + 1) % 3, (leader + 2) % 3} {
		consumers = append(consumers, newClient(t, tc.c.Nodes[i].Addr, kgo.ConsumerGroup("g"), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())))
	}
	total := 0
	for total < n {
		for _, cl := range consumers {
			pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := cl.PollFetches(pctx)
			pcancel()
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d records", total, n)
			}
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
		}
	}
	if len(seen) != n {
		t.Fatalf("read %d distinct records of %d", len(seen), n)
	}
}

// Every node of a cluster reports the same cluster id, and it is not a
// single node's.
func TestClusterNodesReportOneClusterID(t *testing.T) {
	tc := startCluster(t, 3)
	tc.waitController(15 * time.Second)
	var ids []string
	for i := range 3 {
		resp, err := tc.request(i, kmsg.NewPtrDescribeClusterRequest(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, resp.(*kmsg.DescribeClusterResponse).ClusterID)
		md := kmsg.NewPtrMetadataRequest()
		mresp, err := tc.request(i, md, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if id := mresp.(*kmsg.MetadataResponse).ClusterID; id == nil || *id != ids[i] {
			t.Fatalf("node %d: Metadata cluster id %v, DescribeCluster %q", i+1, id, ids[i])
		}
	}
	if ids[0] != ids[1] || ids[0] != ids[2] || ids[0] == "weir-single-node" || len(ids[0]) != 22 {
		t.Fatalf("cluster ids %q; want one 22-character id on every node", ids)
	}
}
