package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/weir-broker/weir/internal/batch"
)

// Transactions and consumer groups in a three-node cluster: the
// coordinators run on the leaders of their internal partitions, write
// markers to partitions other brokers lead, verify transactional writes
// with a coordinator on another node, and reload their state when their
// node is killed and restarted.

// createTopicN asks node i to create topic with parts partitions and
// waits until every node's Metadata shows all of them with a leader.
func (tc *testCluster) createTopicN(i int, topic string, parts int) []int32 {
	tc.t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, int32(parts), 1
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, 15*time.Second)
	if err != nil {
		tc.t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode); err != nil {
		tc.t.Fatalf("create %s: %v", topic, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := range tc.c.Nodes {
		for tc.topicLeaders(n, topic, parts) == nil {
			if time.Now().After(deadline) {
				tc.t.Fatalf("node %d does not list %s with %d partitions", n+1, topic, parts)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return tc.topicLeaders(i, topic, parts)
}

// coordinatorOf is the node that node i names coordinator of key (0: a
// group, 1: a transactional id), retried while the coordinators' topics
// are being created and loaded.
func (tc *testCluster) coordinatorOf(i int, keyType int8, key string) int32 {
	tc.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.CoordinatorType, fc.CoordinatorKey, fc.CoordinatorKeys = keyType, key, []string{key}
		resp, err := tc.request(i, fc, 3*time.Second)
		if err == nil {
			r := resp.(*kmsg.FindCoordinatorResponse)
			code, node := r.ErrorCode, r.NodeID
			if len(r.Coordinators) == 1 {
				code, node = r.Coordinators[0].ErrorCode, r.Coordinators[0].NodeID
			}
			if code == 0 {
				return node
			}
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("node %d names no coordinator for %q: %v", i+1, key, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stableOffsets asks partition p's leader for its high watermark and its
// last stable offset.
func (tc *testCluster) stableOffsets(leader int32, topic string, p int32) (hw, lso int64) {
	tc.t.Helper()
	get := func(isolation int8) int64 {
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = isolation
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := tc.request(int(leader-1), req, 3*time.Second)
		if err != nil {
			tc.t.Fatalf("ListOffsets %s-%d on node %d: %v", topic, p, leader, err)
		}
		got := resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(got.ErrorCode); err != nil {
			tc.t.Fatalf("ListOffsets %s-%d on node %d: %v", topic, p, leader, err)
		}
		return got.Offset
	}
	return get(0), get(1)
}

// readCommitted reads every partition of topic from the start with a
// read_committed consumer until it holds want records, and returns how
// often each value was seen.
func readCommitted(t *testing.T, addr, topic string, want int) map[string]int {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	total := 0
	for total < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d committed records of %d from %s", total, want, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
	}
	// Nothing more arrives: no aborted or duplicate record follows.
	pctx, pcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer pcancel()
	cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	return seen
}

func TestClusterTransactionsCommitAndAbortOnPartitionsOfEveryBroker(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)
	const topic, parts = "txn-spread", 6
	leaders := tc.createTopicN(leader, topic, parts)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Several transactional ids, so their coordinators land on different
	// nodes; each commits one transaction over every partition (led by
	// all three brokers) and aborts another.
	const ids, perTxn = 4, parts
	coordinators := map[int32]bool{}
	for k := range ids {
		id := "spread-" + strconv.Itoa(k)
		cl := newClient(t, tc.c.Nodes[(leader+k)%3].Addr, kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		coordinators[tc.coordinatorOf(leader, 1, id)] = true
		for _, commit := range []bool{true, false} {
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			for p := range perTxn {
				v := fmt.Sprintf("%s/%v/%d", id, commit, p)
				if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(p), Value: []byte(v)}).FirstErr(); err != nil {
					t.Fatalf("%s: produce to partition %d (led by node %d): %v", id, p, leaders[p], err)
				}
			}
			if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
				t.Fatalf("%s: end transaction (commit %v): %v", id, commit, err)
			}
		}
	}
	t.Logf("coordinators on nodes %v, partition leaders %v", coordinators, leaders)

	// The transaction log is replicated as Kafka's defaults say: over
	// every broker (at most 3), with transaction.state.log.min.isr 2.
	adm := newAdmin(t, tc.c.Nodes[leader].Addr)
	rcs, err := adm.DescribeTopicConfigs(ctx, "__transaction_state")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("__transaction_state", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe __transaction_state: %v %v", err, rc.Err)
	}
	minISR := "unset"
	for _, c := range rc.Configs {
		if c.Key == "min.insync.replicas" {
			minISR = c.MaybeValue()
		}
	}
	if minISR != "2" {
		t.Fatalf("__transaction_state min.insync.replicas = %s, want transaction.state.log.min.isr's 2", minISR)
	}
	tds, err := adm.ListTopics(ctx, "__transaction_state")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tds["__transaction_state"].Partitions {
		if len(p.Replicas) != 3 {
			t.Fatalf("__transaction_state-%d has replicas %v, want 3", p.Partition, p.Replicas)
		}
	}

	// Every partition's markers were written by its own leader: the last
	// stable offset reaches the high watermark everywhere.
	for p := range int32(parts) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			hw, lso := tc.stableOffsets(leaders[p], topic, p)
			if hw == lso && hw == 2*ids+2*ids { // a record and a marker per transaction
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s-%d on node %d: high watermark %d, last stable offset %d; want both %d", topic, p, leaders[p], hw, lso, 4*ids)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	seen := readCommitted(t, tc.c.Nodes[leader].Addr, topic, ids*perTxn)
	for k := range ids {
		for p := range perTxn {
			id := "spread-" + strconv.Itoa(k)
			if n := seen[fmt.Sprintf("%s/true/%d", id, p)]; n != 1 {
				t.Fatalf("committed record %s/%d read %d times", id, p, n)
			}
			if n := seen[fmt.Sprintf("%s/false/%d", id, p)]; n != 0 {
				t.Fatalf("aborted record %s/%d read %d times", id, p, n)
			}
		}
	}
}

func TestClusterRefusesATransactionalWriteThatIsNotInTheTransactionOnAnotherBroker(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)
	const topic, parts = "txn-verify", 6
	leaders := tc.createTopicN(leader, topic, parts)

	// A transactional id coordinated by one node, and a partition another
	// node leads.
	const id = "verify"
	coord := tc.coordinatorOf(leader, 1, id)
	target := int32(-1)
	for p, l := range leaders {
		if l != coord {
			target = int32(p)
			break
		}
	}
	if target < 0 {
		t.Fatalf("every partition is led by the coordinator, node %d", coord)
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID = kmsg.StringPtr(id)
	init.TransactionTimeoutMillis = 60000
	resp, err := tc.request(int(coord-1), init, 5*time.Second)
	if err != nil || resp.(*kmsg.InitProducerIDResponse).ErrorCode != 0 {
		t.Fatalf("InitProducerId on the coordinator: %+v %v", resp, err)
	}
	pid, epoch := resp.(*kmsg.InitProducerIDResponse).ProducerID, resp.(*kmsg.InitProducerIDResponse).ProducerEpoch

	produce := func() error {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis, req.TransactionID = -1, 5000, kmsg.StringPtr(id)
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = target
		rp.Records = batch.Build(batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0, Timestamp: time.Now().UnixMilli()},
			[]batch.Record{{Value: []byte("forged")}})
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := tc.request(int(leaders[target]-1), req, 10*time.Second)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode)
	}
	// Not added to any transaction: the leader asks the coordinator on
	// another node and refuses the write.
	if err := produce(); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("transactional write to %s-%d (node %d) outside the transaction (coordinator node %d): %v; want INVALID_TXN_STATE", topic, target, leaders[target], coord, err)
	}
	// Added: accepted.
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, pid, epoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = topic, []int32{target}
	add.Topics = append(add.Topics, at)
	// As a client sends it (v3 at most; v4 is the brokers' form).
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(int16(kmsg.AddPartitionsToTxn), 3)
	ccl := newClient(t, tc.c.Nodes[coord-1].Addr, kgo.MaxVersions(versions))
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer acancel()
	aresp, err := ccl.SeedBrokers()[0].Request(actx, add)
	if err != nil || aresp.(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("AddPartitionsToTxn: %+v %v", aresp, err)
	}
	if err := produce(); err != nil {
		t.Fatalf("transactional write to a partition in the transaction: %v", err)
	}
	// Aborted by the coordinator: the marker reaches the other node and
	// the partition's last stable offset passes the write.
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = id, pid, epoch, false
	if eresp, err := tc.request(int(coord-1), end, 5*time.Second); err != nil || eresp.(*kmsg.EndTxnResponse).ErrorCode != 0 {
		t.Fatalf("EndTxn: %+v %v", eresp, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		hw, lso := tc.stableOffsets(leaders[target], topic, target)
		if hw == 2 && lso == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the abort, %s-%d has high watermark %d and last stable offset %d; want 2 and 2", topic, target, hw, lso)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClusterConsumeTransformProduceCommitsOffsetsWithCoordinatorsOnTwoBrokers(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)
	tc.createTopicN(leader, "ctp-in", 6)
	tc.createTopicN(leader, "ctp-out", 6)
	const n = 120
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pcl := newClient(t, tc.c.Nodes[leader].Addr, kgo.DefaultProduceTopic("ctp-in"))
	for i := range n {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A group and a transactional id whose coordinators run on two
	// different nodes: the offsets' marker crosses brokers.
	groupID, txnID := "ctp-group", ""
	gnode := tc.coordinatorOf(leader, 0, groupID)
	for k := 0; ; k++ {
		txnID = "ctp-txn-" + strconv.Itoa(k)
		if tc.coordinatorOf(leader, 1, txnID) != gnode {
			break
		}
		if k > 50 {
			t.Fatal("every transactional id tried is coordinated by the group's node")
		}
	}
	transformAll(t, ctx, tc.c.Nodes[(leader+1)%3].Addr, groupID, txnID, "ctp-in", "ctp-out", n)
	seen := readCommitted(t, tc.c.Nodes[leader].Addr, "ctp-out", n)
	for i := range n {
		if c := seen["out-"+strconv.Itoa(i)]; c != 1 {
			t.Fatalf("output of record %d read %d times; want exactly once", i, c)
		}
	}
	// The group's committed offsets are the input's end: they were made
	// visible by the marker the transaction coordinator sent to the
	// group coordinator's node.
	adm := kadm.NewClient(newClient(t, tc.c.Nodes[leader].Addr))
	ends, err := adm.ListEndOffsets(ctx, "ctp-in")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		offs, err := adm.FetchOffsets(ctx, groupID)
		ok := err == nil
		ends.Each(func(e kadm.ListedOffset) {
			o, found := offs.Lookup(e.Topic, e.Partition)
			ok = ok && found && o.At == e.Offset
		})
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s (coordinator node %d) committed %+v (%v); want the input's end offsets %+v", groupID, gnode, offs, err, ends)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// transformAll runs a consume-transform-produce session over topic in
// until it has committed the transformation of want records, and returns
// how many it committed.
func transformAll(t *testing.T, ctx context.Context, addr, groupID, txnID, in, out string, want int) int {
	t.Helper()
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(addr),
		kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(out),
		kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(in),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	done := 0
	for done < want {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("transformed %d of %d records", done, want)
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			got++
			sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: append([]byte("out-"), r.Value...)}, nil)
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			t.Logf("end of a transaction: %v (retried)", err)
			continue
		}
		if committed {
			done += got
		}
	}
	return done
}

func TestClusterCoordinatorsReloadAfterTheirBrokerIsKilled(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)
	tc.createTopicN(leader, "reload-in", 6)
	tc.createTopicN(leader, "reload-out", 6)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// A group, a transactional id and a second transactional id, all
	// coordinated by one node, which is then killed.
	const groupID = "reload-group"
	node := tc.coordinatorOf(leader, 0, groupID)
	pick := func(prefix string) string {
		for k := 0; k < 200; k++ {
			id := prefix + strconv.Itoa(k)
			if tc.coordinatorOf(leader, 1, id) == node {
				return id
			}
		}
		t.Fatalf("no transactional id coordinated by node %d", node)
		return ""
	}
	txnID, hangingID := pick("reload-txn-"), pick("reload-hanging-")
	other := (int(node) % 3) // index of a node that stays up
	addr := tc.c.Nodes[other].Addr

	const n = 120
	pcl := newClient(t, addr, kgo.DefaultProduceTopic("reload-in"))
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			if err := pcl.ProduceSync(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, n/2)
	transformAll(t, ctx, addr, groupID, txnID, "reload-in", "reload-out", n/2)

	// A transaction left open on the coordinator's node when it dies.
	hang := newClient(t, addr, kgo.TransactionalID(hangingID), kgo.DefaultProduceTopic("reload-out"))
	if err := hang.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := hang.ProduceSync(ctx, &kgo.Record{Value: []byte("hanging")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	tc.c.Kill(int(node - 1))
	if err := tc.c.Start(int(node - 1)); err != nil {
		t.Fatal(err)
	}

	// The restarted node reloads its coordinators: the group resumes from
	// its committed offsets, the transactional id from its epoch, and
	// the open transaction is aborted when its id starts again.
	again := newClient(t, addr, kgo.TransactionalID(hangingID), kgo.DefaultProduceTopic("reload-out"))
	if err := again.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := again.ProduceSync(ctx, &kgo.Record{Value: []byte("after-restart")}).FirstErr(); err != nil {
		t.Fatalf("the hanging id's new producer: %v", err)
	}
	if err := again.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("the hanging id's new producer commits: %v", err)
	}
	produce(n/2, n)
	transformAll(t, ctx, addr, groupID, txnID, "reload-in", "reload-out", n/2)

	seen := readCommitted(t, addr, "reload-out", n+1)
	for i := range n {
		if c := seen["out-"+strconv.Itoa(i)]; c != 1 {
			t.Fatalf("output of record %d read %d times; want exactly once", i, c)
		}
	}
	if seen["hanging"] != 0 || seen["after-restart"] != 1 {
		t.Fatalf("the transaction left open read %d times, its successor %d; want 0 and 1", seen["hanging"], seen["after-restart"])
	}
}
