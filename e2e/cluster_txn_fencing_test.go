package e2e

// Transactions across brokers under faults, in a three-node cluster: late
// copies of markers, writes after EndTxn, bad marker targets, nodes that
// lag, restart or stop, and coordinators that are not where a request
// went.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/weir-broker/weir/internal/batch"
)

// unreplicatedInternal keeps the coordinators' topics at one replica, so
// a coordinator stays on its node across a restart, as these tests need.
var unreplicatedInternal = []string{"--set", "offsets.topic.replication.factor=1", "--set", "transaction.state.log.replication.factor=1"}

// rawTxn is a raw transactional producer driven request by request.
type rawTxn struct {
	tc     *testCluster
	id     string
	coord  int32
	pid    int64
	epoch  int16
	seq    map[int32]int32
	topic  string
	leader []int32
}

func (tc *testCluster) rawInit(id string, coord int32, topic string, leaders []int32) *rawTxn {
	tc.t.Helper()
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID = kmsg.StringPtr(id)
	init.TransactionTimeoutMillis = 60000
	var r *kmsg.InitProducerIDResponse
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := tc.request(int(coord-1), init, 5*time.Second)
		if err == nil {
			r = resp.(*kmsg.InitProducerIDResponse)
			if r.ErrorCode == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("InitProducerId %q on node %d: %+v %v", id, coord, r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &rawTxn{tc: tc, id: id, coord: coord, pid: r.ProducerID, epoch: r.ProducerEpoch, seq: map[int32]int32{}, topic: topic, leader: leaders}
}

// add sends AddPartitionsToTxn (v3, as a client) to the coordinator.
func (x *rawTxn) add(parts ...int32) {
	x.tc.t.Helper()
	if err := x.tryAdd(x.topic, parts...); err != nil {
		x.tc.t.Fatalf("AddPartitionsToTxn %v: %v", parts, err)
	}
}

// tryAdd sends AddPartitionsToTxn (v3, as a client) for partitions of
// topic, retrying retriable errors, and returns the last error.
func (x *rawTxn) tryAdd(topic string, parts ...int32) error {
	x.tc.t.Helper()
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = x.id, x.pid, x.epoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = topic, parts
	add.Topics = append(add.Topics, at)
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(int16(kmsg.AddPartitionsToTxn), 3)
	cl := newClient(x.tc.t, x.tc.c.Nodes[x.coord-1].Addr, kgo.MaxVersions(versions))
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cl.SeedBrokers()[0].Request(ctx, add)
		cancel()
		if err == nil {
			ok := true
			for _, t := range resp.(*kmsg.AddPartitionsToTxnResponse).Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode != 0 {
						ok = false
						err = kerr.ErrorForCode(p.ErrorCode)
					}
				}
			}
			if ok {
				return nil
			}
			var ke *kerr.Error
			if errors.As(err, &ke) && !ke.Retriable {
				return err
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// produce sends one transactional batch (the next sequence) to partition
// p's leader and returns the partition's error.
func (x *rawTxn) produce(p int32, value string) error {
	x.tc.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis, req.TransactionID = -1, 5000, kmsg.StringPtr(x.id)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = x.topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = p
	rp.Records = batch.Build(batch.Spec{Attributes: batch.AttrTransactional, ProducerID: x.pid, ProducerEpoch: x.epoch, BaseSequence: x.seq[p], Timestamp: time.Now().UnixMilli()},
		[]batch.Record{{Value: []byte(value)}})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := x.tc.request(int(x.leader[p]-1), req, 10*time.Second)
	if err != nil {
		return err
	}
	perr := kerr.ErrorForCode(resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode)
	if perr == nil {
		x.seq[p]++
	}
	return perr
}

func (x *rawTxn) end(commit bool) error {
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = x.id, x.pid, x.epoch, commit
	var err error
	for try := 0; try < 5; try++ { // a restarted node's connection fails once
		var resp kmsg.Response
		if resp, err = x.tc.request(int(x.coord-1), end, 10*time.Second); err == nil {
			return kerr.ErrorForCode(resp.(*kmsg.EndTxnResponse).ErrorCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// partitionsLedBy returns a partition led by coord and one led by another
// node.
func partitionsLedBy(t *testing.T, leaders []int32, coord int32) (local, remote int32) {
	t.Helper()
	local, remote = -1, -1
	for p, l := range leaders {
		if l == coord && local < 0 {
			local = int32(p)
		}
		if l != coord && remote < 0 {
			remote = int32(p)
		}
	}
	if local < 0 || remote < 0 {
		t.Fatalf("leaders %v: need a partition led by node %d and one led by another", leaders, coord)
	}
	return local, remote
}

// KIP-890: once EndTxn is accepted the transaction is no longer open, and
// a transactional write of the producer is refused on every partition,
// whichever node leads it, also while the markers are still on their way:
// a partition that already holds the producer's transaction asks the
// coordinator about every write, not only the first.
func TestClusterWriteAfterEndTxnIsRefusedOnAPartitionOfAnotherBroker(t *testing.T) {
	// The markers are held back 4s after the PrepareCommit is durable: a
	// slow network or a busy coordinator gives the same window.
	tc := startCluster(t, 3, append(unreplicatedInternal, "--unsafe-faults", "txn.before-markers=delay:4s")...)
	leader := tc.waitController(15 * time.Second)
	const topic, parts = "fence-after-end", 6
	leaders := tc.createTopicN(leader, topic, parts)
	const id = "fence-after-end-id"
	coord := tc.coordinatorOf(leader, 1, id)
	local, remote := partitionsLedBy(t, leaders, coord)

	x := tc.rawInit(id, coord, topic, leaders)
	x.add(local, remote)
	for _, p := range []int32{local, remote} {
		if err := x.produce(p, fmt.Sprintf("in-txn-%d", p)); err != nil {
			t.Fatalf("write to %s-%d (node %d) inside the transaction: %v", topic, p, leaders[p], err)
		}
	}
	if err := x.end(true); err != nil {
		t.Fatalf("EndTxn(commit): %v", err)
	}
	// The transaction is over (PrepareCommit is durable, EndTxn answered).
	localErr := x.produce(local, "after-end-local")
	remoteErr := x.produce(remote, "after-end-remote")
	t.Logf("write after EndTxn to the coordinator's partition %d: %v; to partition %d of node %d: %v", local, localErr, remote, leaders[remote], remoteErr)
	if localErr == nil {
		t.Fatalf("a write after EndTxn was accepted on the coordinator's own partition %d", local)
	}
	if remoteErr == nil {
		// Show what it did: the late marker commits it.
		seen := readCommitted(t, tc.c.Nodes[leader].Addr, topic, 3)
		t.Fatalf("a transactional write sent after EndTxn(commit) was answered was accepted by %s-%d (node %d, coordinator node %d; the local partition refused it with %v); read_committed then sees %v",
			topic, remote, leaders[remote], coord, localErr, seen)
	}
}

// WriteTxnMarkers aimed at a __transaction_state partition is refused
// with an error code and writes nothing: a marker there would make the
// partition's coordinator shard unreadable and its node unable to start.
func TestClusterWriteTxnMarkersToTransactionStateIsRefused(t *testing.T) {
	tc := startCluster(t, 3, unreplicatedInternal...)
	leader := tc.waitController(15 * time.Second)
	const topic = "fence-markers"
	leaders := tc.createTopicN(leader, topic, 3)
	const id = "fence-markers-id"
	coord := tc.coordinatorOf(leader, 1, id)
	x := tc.rawInit(id, coord, topic, leaders)

	// The transactional id's partition of __transaction_state, on coord.
	var statePart int32 = -1
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("__transaction_state")
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(int(coord-1), req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.(*kmsg.MetadataResponse).Topics[0].Partitions {
		if p.Leader == coord {
			statePart = p.Partition
			break
		}
	}
	if statePart < 0 {
		t.Fatalf("node %d leads no partition of __transaction_state", coord)
	}
	wm := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = 987654, 0, true
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = "__transaction_state", []int32{statePart}
	m.Topics = append(m.Topics, mt)
	wm.Markers = append(wm.Markers, m)
	wresp, err := tc.request(int(coord-1), wm, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	code := wresp.(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode
	t.Logf("WriteTxnMarkers to __transaction_state-%d on node %d: %v", statePart, coord, kerr.ErrorForCode(code))

	// Whatever it answered, the node must come back and serve the id.
	i := int(coord - 1)
	tc.c.Kill(i)
	startErr := tc.c.Start(i)
	if startErr == nil {
		x2 := tc.rawInitWithin(id, coord, 10*time.Second)
		if x2 == nil {
			startErr = errors.New("InitProducerId never succeeds after the restart")
		}
	}
	if code == 0 || startErr != nil {
		log := tc.c.Log(i)
		if k := strings.LastIndex(log, "load transactions"); k >= 0 {
			log = log[max(0, k-200):min(len(log), k+400)]
		} else if len(log) > 1500 {
			log = log[len(log)-1500:]
		}
		t.Fatalf("WriteTxnMarkers to __transaction_state-%d answered %v (want an error code); after SIGKILL and restart node %d: %v\n…%s",
			statePart, kerr.ErrorForCode(code), coord, startErr, log)
	}
	_ = x
}

// rawInitWithin is rawInit without failing: nil if InitProducerId does not
// succeed within d.
func (tc *testCluster) rawInitWithin(id string, coord int32, d time.Duration) *kmsg.InitProducerIDResponse {
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID = kmsg.StringPtr(id)
	init.TransactionTimeoutMillis = 60000
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := tc.request(int(coord-1), init, 3*time.Second)
		if err == nil && resp.(*kmsg.InitProducerIDResponse).ErrorCode == 0 {
			return resp.(*kmsg.InitProducerIDResponse)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// A node answers a request naming several groups group by group: those
// whose __consumer_offsets partition another node leads get
// NOT_COORDINATOR, the others are served (DescribeGroups, DeleteGroups and
// OffsetFetch v8+ alike).
func TestClusterDescribeGroupsOnANonCoordinatorAnswersNotCoordinator(t *testing.T) {
	tc := startCluster(t, 3, unreplicatedInternal...)
	leader := tc.waitController(15 * time.Second)
	// Two groups with coordinators on different nodes.
	g0 := "fence-describe-0"
	n0 := tc.coordinatorOf(leader, 0, g0)
	var g1 string
	var n1 int32
	for k := 1; ; k++ {
		g1 = "fence-describe-" + strconv.Itoa(k)
		if n1 = tc.coordinatorOf(leader, 0, g1); n1 != n0 {
			break
		}
		if k > 100 {
			t.Fatal("every group tried is on one node")
		}
	}
	// Ask g0's coordinator about both.
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{g0, g1}
	resp, err := tc.request(int(n0-1), req, 5*time.Second)
	if err != nil {
		t.Fatalf("DescribeGroups [%s (node %d), %s (node %d)] on node %d: %v; want %s described and %s answered NOT_COORDINATOR",
			g0, n0, g1, n1, n0, err, g0, g1)
	}
	gs := resp.(*kmsg.DescribeGroupsResponse).Groups
	// The first group has no members: v6 answers GROUP_ID_NOT_FOUND,
	// earlier versions the Dead state; either way it is answered here.
	described := len(gs) == 2 && (gs[0].ErrorCode == 0 || gs[0].ErrorCode == kerr.GroupIDNotFound.Code)
	if !described || gs[1].ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("DescribeGroups on node %d: %+v; want %s described and %s NOT_COORDINATOR", n0, gs, g0, g1)
	}
}

// leaderOfInternal returns a partition of an internal topic and its
// leader, chosen by want (nil: any).
func (tc *testCluster) internalPartition(i int, topic string, want func(leader int32) bool) (int32, int32) {
	tc.t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, 5*time.Second)
	if err != nil {
		tc.t.Fatal(err)
	}
	for _, p := range resp.(*kmsg.MetadataResponse).Topics[0].Partitions {
		if want(p.Leader) {
			return p.Partition, p.Leader
		}
	}
	tc.t.Fatalf("no partition of %s fits", topic)
	return -1, -1
}

// A client's AddPartitionsToTxn naming a partition of __transaction_state
// is refused, so no transaction's marker ever lands in another broker's
// coordinator state.
func TestClusterAddPartitionsToTxnRefusesTransactionStatePartitions(t *testing.T) {
	tc := startCluster(t, 3, unreplicatedInternal...)
	leader := tc.waitController(15 * time.Second)
	const topic = "fence-internal-add"
	leaders := tc.createTopicN(leader, topic, 3)
	const id = "fence-internal-add-id"
	coord := tc.coordinatorOf(leader, 1, id)
	x := tc.rawInit(id, coord, topic, leaders)
	victimPart, victim := tc.internalPartition(leader, "__transaction_state", func(l int32) bool { return l != coord })

	addErr := x.tryAdd("__transaction_state", victimPart)
	t.Logf("AddPartitionsToTxn [__transaction_state-%d (node %d)] on coordinator node %d: %v", victimPart, victim, coord, addErr)
	if addErr != nil {
		return // refused: the property holds
	}
	if err := x.end(true); err != nil {
		t.Fatalf("EndTxn: %v", err)
	}
	// Let the coordinator's WriteTxnMarkers reach the victim.
	time.Sleep(2 * time.Second)
	hw, lso := tc.stableOffsets(victim, "__transaction_state", victimPart)
	t.Logf("__transaction_state-%d on node %d: high watermark %d, LSO %d", victimPart, victim, hw, lso)
	i := int(victim - 1)
	tc.c.Kill(i)
	startErr := tc.c.Start(i)
	// The listener is bound before the broker opens: give Open time.
	for k := 0; k < 50 && startErr == nil; k++ {
		if !tc.c.Running(i) {
			startErr = errors.New("the process exited after it started listening")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if startErr == nil {
		t.Logf("node %d restarted and runs", victim)
		return
	}
	log := tc.c.Log(i)
	if k := strings.LastIndex(log, "load transactions"); k >= 0 {
		log = log[k:min(len(log), k+300)]
	} else {
		log = ""
	}
	t.Fatalf("AddPartitionsToTxn accepted __transaction_state-%d (led by node %d) into a client's transaction; after EndTxn(commit) and a SIGKILL, node %d restarts with: %v %s",
		victimPart, victim, victim, startErr, log)
}

// pidOf finds the process of node i by its data directory.
func pidOf(t *testing.T, dataDir string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for k := 0; k+1 < len(args); k++ {
			if args[k] == "--data" && args[k+1] == dataDir && len(args) > 0 && strings.HasSuffix(args[0], "weir") {
				return pid
			}
		}
	}
	t.Fatalf("no process serves %s", dataDir)
	return 0
}

// SIGTERM makes a node exit promptly even while one of its produce
// requests waits on a KIP-890 verification with a coordinator that does
// not answer (stopped): waits on other brokers end when shutdown begins.
func TestClusterSIGTERMIsPromptWhileAVerificationWaitsOnAStuckCoordinator(t *testing.T) {
	tc := startCluster(t, 3, unreplicatedInternal...)
	leader := tc.waitController(15 * time.Second)
	const topic = "fence-sigterm"
	leaders := tc.createTopicN(leader, topic, 6)
	// A coordinator that is not the active controller: a stopped
	// controller would hold up the controlled shutdown instead, which
	// waits for a new one (up to the session timeout).
	var id string
	var coord int32
	for k := 0; ; k++ {
		id = "fence-sigterm-id-" + strconv.Itoa(k)
		if coord = tc.coordinatorOf(leader, 1, id); coord != int32(leader+1) {
			break
		}
	}
	_, remote := partitionsLedBy(t, leaders, coord)
	x := tc.rawInit(id, coord, topic, leaders)
	x.add(remote)

	cpid := pidOf(t, tc.c.Nodes[coord-1].DataDir)
	if err := syscall.Kill(cpid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(cpid, syscall.SIGCONT)
	done := make(chan error, 1)
	go func() { done <- x.produce(remote, "v") }()
	time.Sleep(500 * time.Millisecond) // the leader is now asking the stopped coordinator
	start := time.Now()
	tc.c.Terminate(int(leaders[remote] - 1))
	took := time.Since(start)
	syscall.Kill(cpid, syscall.SIGCONT)
	<-done
	if took > 3*time.Second {
		t.Fatalf("node %d took %v to exit on SIGTERM while a produce waited on the stopped coordinator (node %d); want a prompt exit", leaders[remote], took.Round(100*time.Millisecond), coord)
	}
}

// tryStableOffsets is stableOffsets returning errors (a restarted node's
// connection fails once).
func (tc *testCluster) tryStableOffsets(leader int32, topic string, p int32) (hw, lso int64, err error) {
	get := func(isolation int8) (int64, error) {
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
			return 0, err
		}
		got := resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
		return got.Offset, kerr.ErrorForCode(got.ErrorCode)
	}
	if hw, err = get(0); err != nil {
		return
	}
	lso, err = get(1)
	return
}

// A coordinator restarted after a SIGKILL with a transaction prepared
// completes it and serves promptly: its recovery's requests to other
// brokers never go to its own listener, which does not serve yet.
func TestClusterRestartedCoordinatorServesPromptlyWithAPreparedTransaction(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal, "--unsafe-faults", "txn.before-markers=delay:1s")...)
	leader := tc.waitController(15 * time.Second)
	const topic = "fence-restart-prompt"
	leaders := tc.createTopicN(leader, topic, 6)
	// A transactional id coordinated by node 1, the first seed.
	var id string
	for k := 0; ; k++ {
		id = "fence-restart-prompt-" + strconv.Itoa(k)
		if tc.coordinatorOf(leader, 1, id) == 1 {
			break
		}
		if k > 200 {
			t.Fatal("no transactional id lands on node 1")
		}
	}
	_, remote := partitionsLedBy(t, leaders, 1)
	// The peer client picks a random seed for its first metadata request:
	// a few restarts make it pick this node.
	for round := range 10 {
		x := tc.rawInit(id, 1, topic, leaders)
		x.add(remote)
		for try := 0; ; try++ {
			err := x.produce(remote, "v")
			if err == nil {
				break
			}
			// The leader's connection to the restarted coordinator fails
			// once (NOT_ENOUGH_REPLICAS, retriable).
			if try > 20 {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err := x.end(true); err != nil {
			t.Fatal(err)
		}
		tc.c.Kill(0) // PrepareCommit is durable; the markers wait 1s
		start := time.Now()
		if err := tc.c.Start(0); err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := tc.brokers(0); err == nil {
				break
			}
			if time.Since(start) > 30*time.Second {
				t.Fatal("node 1 never serves after its restart")
			}
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("restart %d: node 1 served Metadata %v after its restart", round, took.Round(100*time.Millisecond))
		if took > 6*time.Second {
			t.Fatalf("restarted coordinator node 1 (one prepared transaction, markers for node %d) answered its first request only after %v; want within a few seconds (the markers' delay is 1s)",
				leaders[remote], took.Round(100*time.Millisecond))
		}
	}
}

// A partition leader whose metadata has not caught up yet (a node just
// restarted, replaying the quorum's log) answers a transactional write
// with a retriable error, never with one that tells a live producer its
// id is unknown.
func TestClusterLaggingLeaderDoesNotDenyALiveProducerID(t *testing.T) {
	tc := startCluster(t, 3, unreplicatedInternal...)
	leader := tc.waitController(15 * time.Second)
	const topic = "fence-lag"
	leaders := tc.createTopicN(leader, topic, 6)
	// The victim leads a data partition and is not the controller.
	victim, q := int32(-1), int32(-1)
	for p, l := range leaders {
		if int(l-1) != leader {
			victim, q = l, int32(p)
			break
		}
	}
	tc.c.Kill(int(victim - 1))
	// __transaction_state is created while the victim is down.
	var id string
	var coord int32
	for k := 0; ; k++ {
		id = "fence-lag-" + strconv.Itoa(k)
		if coord = tc.coordinatorOf(leader, 1, id); coord != victim {
			break
		}
	}
	x := tc.rawInit(id, coord, topic, leaders)
	x.add(q)
	if err := tc.c.Start(int(victim - 1)); err != nil {
		t.Fatal(err)
	}
	var errs []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := x.produce(q, "v")
		if err == nil {
			break
		}
		errs = append(errs, err.Error())
		if errors.Is(err, kerr.InvalidProducerIDMapping) {
			t.Fatalf("restarted leader node %d answered a write of live producer %d (transactional id %q, coordinator node %d) with %v; want a retriable error until its metadata catches up (errors so far: %v)",
				victim, x.pid, id, coord, err, errs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("write never accepted: %v", errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("accepted after %d errors: %v", len(errs), errs)
}

// An aborted transaction's records never become visible, also when a late
// copy of an earlier transaction's marker arrives after the producer's
// next transaction began. A WriteTxnMarkers request a coordinator sent
// before it was killed waits, unread, on the partition leader's
// connection (its reader held back by queued.max.requests behind slow
// replies); the restarted coordinator completes the same transactions
// over a new connection, the producer starts its next transaction at the
// same epoch, and the old request is read at last. Markers carry their
// transaction's number, so the partition applies each transaction's
// marker once and the late copy ends nothing.
func TestClusterStaleMarkerFromAKilledCoordinatorDoesNotCommitTheNextTransaction(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal,
		"--unsafe-faults", "writetxnmarkers.response=delay:20s#1",
		"--set", "queued.max.requests=1",
		"--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")...)
	leader := tc.waitController(15 * time.Second)
	const topic = "fence-stale-marker"
	leaders := tc.createTopicN(leader, topic, 6)
	// Four transactional ids on one coordinator; all write partition q,
	// led by another node.
	var ids []string
	var coord int32
	for k := 0; len(ids) < 4; k++ {
		id := "fence-stale-" + strconv.Itoa(k)
		c := tc.coordinatorOf(leader, 1, id)
		if len(ids) == 0 {
			coord = c
		}
		if c == coord {
			ids = append(ids, id)
		}
	}
	_, q := partitionsLedBy(t, leaders, coord)
	var xs []*rawTxn
	for _, id := range ids {
		x := tc.rawInit(id, coord, topic, leaders)
		x.add(q)
		if err := x.produce(q, id+"-first"); err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	// Their markers go to q's leader over one connection, in this order:
	// the first reply is held 20s, the next two fill the connection's
	// queue, and the fourth (Y's) stays unread.
	held := time.Now()
	for _, x := range xs {
		if err := x.end(true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	y := xs[3]
	tc.c.Kill(int(coord - 1))
	if err := tc.c.Start(int(coord - 1)); err != nil {
		t.Fatal(err)
	}
	// The restarted coordinator completes them; Y's next transaction
	// starts and writes q.
	deadline := time.Now().Add(20 * time.Second)
	for y.tryAdd(topic, q) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Y's next transaction never starts")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		err := y.produce(q, "Y-second-aborted")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Y's second write: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("Y's second transaction wrote %s-%d (node %d); waiting for the held connection to drain", topic, q, leaders[q])
	time.Sleep(time.Until(held.Add(22 * time.Second)))
	if err := y.end(false); err != nil {
		t.Fatalf("EndTxn(abort): %v", err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		hw, lso, err := tc.tryStableOffsets(leaders[q], topic, q)
		if err == nil && hw == lso {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LSO %d never reaches HW %d (%v)", lso, hw, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := readCommitted(t, tc.c.Nodes[leader].Addr, topic, 4)
	if seen["Y-second-aborted"] != 0 {
		t.Fatalf("read_committed sees the aborted transaction's record: %v\nY is producer %d; %s-%d on node %d holds:\n%s",
			seen, y.pid, topic, q, leaders[q], tc.dumpLog(leaders[q], topic, q))
	}
}

// The same late marker without any crash: the partition leader is merely
// slow to read a connection, the coordinator's WriteTxnMarkers times out,
// its retry over a new connection completes the transaction, and the old
// request is read after the producer's next transaction began there.
func TestClusterStaleMarkerFromASlowLeaderDoesNotCommitTheNextTransaction(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal,
		"--unsafe-faults", "writetxnmarkers.response=delay:25s#1",
		"--set", "queued.max.requests=1",
		"--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")...)
	leader := tc.waitController(15 * time.Second)
	const topic = "fence-slow-marker"
	leaders := tc.createTopicN(leader, topic, 6)
	// Four transactional ids on one coordinator; all write partition q,
	// led by another node.
	var ids []string
	var coord int32
	for k := 0; len(ids) < 4; k++ {
		id := "fence-slow-" + strconv.Itoa(k)
		c := tc.coordinatorOf(leader, 1, id)
		if len(ids) == 0 {
			coord = c
		}
		if c == coord {
			ids = append(ids, id)
		}
	}
	_, q := partitionsLedBy(t, leaders, coord)
	var xs []*rawTxn
	for _, id := range ids {
		x := tc.rawInit(id, coord, topic, leaders)
		x.add(q)
		if err := x.produce(q, id+"-first"); err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	// Their markers go to q's leader over one connection, in this order:
	// the first reply is held 20s, the next two fill the connection's
	// queue, and the fourth (Y's) stays unread.
	held := time.Now()
	for _, x := range xs {
		if err := x.end(true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	y := xs[3]
	// No crash: the coordinator's requests time out (peerRequestTimeout,
	// 10s) and its ticker sends the markers again.
	// The restarted coordinator completes them; Y's next transaction
	// starts and writes q.
	deadline := time.Now().Add(20 * time.Second)
	for y.tryAdd(topic, q) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Y's next transaction never starts")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		err := y.produce(q, "Y-second-aborted")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Y's second write: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("Y's second transaction wrote %s-%d (node %d); waiting for the held connection to drain", topic, q, leaders[q])
	time.Sleep(time.Until(held.Add(27 * time.Second)))
	if err := y.end(false); err != nil {
		t.Fatalf("EndTxn(abort): %v", err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		hw, lso, err := tc.tryStableOffsets(leaders[q], topic, q)
		if err == nil && hw == lso {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LSO %d never reaches HW %d (%v)", lso, hw, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := readCommitted(t, tc.c.Nodes[leader].Addr, topic, 4)
	if seen["Y-second-aborted"] != 0 {
		t.Fatalf("read_committed sees the aborted transaction's record: %v\nY is producer %d; %s-%d on node %d holds:\n%s",
			seen, y.pid, topic, q, leaders[q], tc.dumpLog(leaders[q], topic, q))
	}
}

// dumpLog lists a partition's batches: offset, producer, and data or
// marker.
func (tc *testCluster) dumpLog(leader int32, topic string, p int32) string {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes = 100, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes = p, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(int16(kmsg.Fetch), 12)
	cl := newClient(tc.t, tc.c.Nodes[leader-1].Addr, kgo.MaxVersions(versions))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return err.Error()
	}
	fp := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	data := fp.RecordBatches
	if len(data) == 0 {
		return fmt.Sprintf("nothing fetched: %v", kerr.ErrorForCode(fp.ErrorCode))
	}
	var out strings.Builder
	for len(data) > 0 {
		h, err := batch.ParseHeader(data)
		if err != nil {
			break
		}
		b := data[:h.Size()]
		kind := "data"
		if h.Control() {
			if c, err := batch.IsCommitMarker(b); err == nil && c {
				kind = "COMMIT marker"
			} else {
				kind = "ABORT marker"
			}
		} else if recs, err := batch.Records(b); err == nil && len(recs) > 0 {
			kind = "data " + string(recs[0].Value)
		}
		fmt.Fprintf(&out, "  offset %d producer %d epoch %d: %s\n", h.BaseOffset, h.ProducerID, h.ProducerEpoch, kind)
		data = data[h.Size():]
	}
	return out.String()
}

// addOffsets sends AddOffsetsToTxn for group to the coordinator.
func (x *rawTxn) addOffsets(group string) error {
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = x.id, x.pid, x.epoch, group
	var err error
	for try := 0; try < 50; try++ {
		var resp kmsg.Response
		if resp, err = x.tc.request(int(x.coord-1), req, 5*time.Second); err == nil {
			if err = kerr.ErrorForCode(resp.(*kmsg.AddOffsetsToTxnResponse).ErrorCode); err == nil {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// txnCommitOffset sends TxnOffsetCommit of offset for topic-p to the
// group's coordinator node.
func (x *rawTxn) txnCommitOffset(gnode int32, group, topic string, p int32, offset int64) error {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = x.id, group, x.pid, x.epoch
	req.Generation = -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = p, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	var err error
	for try := 0; try < 50; try++ {
		var resp kmsg.Response
		if resp, err = x.tc.request(int(gnode-1), req, 5*time.Second); err == nil {
			if err = kerr.ErrorForCode(resp.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode); err == nil {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// Offsets committed through TxnOffsetCommit become visible only if their
// transaction commits: a late copy of an earlier transaction's marker for
// the group's __consumer_offsets partition neither ends the next
// transaction there nor applies its pending offsets.
func TestClusterStaleMarkerDoesNotCommitTheNextTransactionsOffsets(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal,
		"--unsafe-faults", "writetxnmarkers.response=delay:20s#1",
		"--set", "queued.max.requests=1",
		"--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")...)
	leader := tc.waitController(15 * time.Second)
	const topic = "fence-stale-offsets"
	leaders := tc.createTopicN(leader, topic, 6)
	var ids []string
	var coord int32
	for k := 0; len(ids) < 4; k++ {
		id := "fence-stale-off-" + strconv.Itoa(k)
		c := tc.coordinatorOf(leader, 1, id)
		if len(ids) == 0 {
			coord = c
		}
		if c == coord {
			ids = append(ids, id)
		}
	}
	_, q := partitionsLedBy(t, leaders, coord)
	gnode := leaders[q]
	var group string
	for k := 0; ; k++ {
		group = "fence-stale-group-" + strconv.Itoa(k)
		if tc.coordinatorOf(leader, 0, group) == gnode {
			break
		}
	}
	var xs []*rawTxn
	for i, id := range ids {
		x := tc.rawInit(id, coord, topic, leaders)
		x.add(q)
		if err := x.produce(q, id+"-first"); err != nil {
			t.Fatal(err)
		}
		if i == 3 { // Y: its first transaction commits offset 10
			if err := x.addOffsets(group); err != nil {
				t.Fatal(err)
			}
			if err := x.txnCommitOffset(gnode, group, topic, q, 10); err != nil {
				t.Fatal(err)
			}
		}
		xs = append(xs, x)
	}
	held := time.Now()
	for _, x := range xs {
		if err := x.end(true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	y := xs[3]
	tc.c.Kill(int(coord - 1))
	if err := tc.c.Start(int(coord - 1)); err != nil {
		t.Fatal(err)
	}
	// Y's second transaction: offset 42, to be aborted.
	deadline := time.Now().Add(20 * time.Second)
	for y.addOffsets(group) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Y's next transaction never starts")
		}
	}
	if err := y.txnCommitOffset(gnode, group, topic, q, 42); err != nil {
		t.Fatalf("Y's second TxnOffsetCommit: %v", err)
	}
	time.Sleep(time.Until(held.Add(22 * time.Second)))
	if err := y.end(false); err != nil {
		t.Fatalf("EndTxn(abort): %v", err)
	}
	time.Sleep(time.Second)
	req := kmsg.NewPtrOffsetFetchRequest()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rgt := kmsg.NewOffsetFetchRequestGroupTopic()
	rgt.Topic, rgt.Partitions = topic, []int32{q}
	rg.Topics = append(rg.Topics, rgt)
	req.Groups = append(req.Groups, rg)
	var got int64 = -2
	for try := 0; try < 20; try++ {
		resp, err := tc.request(int(gnode-1), req, 5*time.Second)
		if err == nil {
			r := resp.(*kmsg.OffsetFetchResponse)
			if len(r.Groups) > 0 && len(r.Groups[0].Topics) > 0 && len(r.Groups[0].Topics[0].Partitions) > 0 {
				got = r.Groups[0].Topics[0].Partitions[0].Offset
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != 10 {
		t.Fatalf("group %s (coordinator node %d) has offset %d for %s-%d; want 10 (the committed transaction's), not 42 (the aborted one's)",
			group, gnode, got, topic, q)
	}
}
