package e2e

// Transaction outcomes across brokers when marker writes are retried,
// nodes crash, and partitions are closed and reopened as their leaders
// are fenced and unfenced: committed means committed, data and offsets,
// and aborted means never visible.

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetchOffset asks node gnode for group's committed offset of topic-p,
// with require_stable when stable is set; it returns the offset and the
// partition's error.
func (tc *testCluster) fetchOffset(gnode int32, group, topic string, p int32, stable bool) (int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.RequireStable = stable
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rgt := kmsg.NewOffsetFetchRequestGroupTopic()
	rgt.Topic, rgt.Partitions = topic, []int32{p}
	rg.Topics = append(rg.Topics, rgt)
	req.Groups = append(req.Groups, rg)
	resp, err := tc.request(int(gnode-1), req, 5*time.Second)
	if err != nil {
		return -2, err
	}
	r := resp.(*kmsg.OffsetFetchResponse)
	if len(r.Groups) == 0 {
		return -2, kerr.UnknownServerError
	}
	if err := kerr.ErrorForCode(r.Groups[0].ErrorCode); err != nil {
		return -2, err
	}
	if len(r.Groups[0].Topics) == 0 || len(r.Groups[0].Topics[0].Partitions) == 0 {
		return -1, nil
	}
	pp := r.Groups[0].Topics[0].Partitions[0]
	return pp.Offset, kerr.ErrorForCode(pp.ErrorCode)
}

// Consume-transform-produce commits its offsets iff its transaction
// commits, also when the coordinator's marker write is retried: the
// coordinator also leads the group's __consumer_offsets partition, and the
// transaction's data partition is on another node whose WriteTxnMarkers
// answer comes after the coordinator's peer timeout. The first attempt
// applies the local offsets marker and fails on the remote one; the group
// shard is told as soon as its marker is durable, so the retry, which
// finds that marker already applied, leaves the offsets committed.
func TestClusterCommittedTransactionsOffsetsApplyAfterARetriedMarkerWrite(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal,
		"--unsafe-faults", "writetxnmarkers.response=delay:11s#1",
		"--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")...)
	leader := tc.waitController(15 * time.Second)
	const topic = "outcome-offsets-retry"
	leaders := tc.createTopicN(leader, topic, 6)
	id := "outcome-offsets-retry-id"
	coord := tc.coordinatorOf(leader, 1, id)
	_, r := partitionsLedBy(t, leaders, coord)
	var group string
	for k := 0; ; k++ {
		group = "outcome-offsets-retry-group-" + strconv.Itoa(k)
		if tc.coordinatorOf(leader, 0, group) == coord {
			break
		}
	}
	x := tc.rawInit(id, coord, topic, leaders)
	x.add(r)
	if err := x.produce(r, "committed"); err != nil {
		t.Fatal(err)
	}
	if err := x.addOffsets(group); err != nil {
		t.Fatal(err)
	}
	if err := x.txnCommitOffset(coord, group, topic, r, 10); err != nil {
		t.Fatal(err)
	}
	if err := x.end(true); err != nil {
		t.Fatal(err)
	}
	// The transaction completes: its data partition's LSO reaches the HW.
	deadline := time.Now().Add(30 * time.Second)
	for {
		hw, lso, err := tc.tryStableOffsets(leaders[r], topic, r)
		if err == nil && hw == lso && hw > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LSO %d never reaches HW %d (%v)", lso, hw, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Once the coordinator can start the id's next transaction, the
	// previous one is complete (CompleteCommit written).
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := x.tryAdd(topic, r)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the id's next transaction never starts: %v", err)
		}
	}
	var got int64
	var err error
	deadline = time.Now().Add(5 * time.Second)
	for {
		got, err = tc.fetchOffset(coord, group, topic, r, false)
		if err == nil && got == 10 {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	stable, serr := tc.fetchOffset(coord, group, topic, r, true)
	if got != 10 {
		t.Fatalf("the transaction committed (LSO reached HW on %s-%d, the next transaction started), but group %s on node %d has offset %d (%v) for it; require_stable: %d (%v); want 10\n%s-%d holds:\n%s",
			topic, r, group, coord, got, err, stable, serr, topic, r, tc.dumpLog(leaders[r], topic, r))
	}
}

// An aborted transaction's records never become visible, also when the
// partition leader was fenced and unfenced (without a restart) between a
// transaction's marker and a late copy of it: the partition is closed and
// opened afresh meanwhile, and the numbers of the markers it applied
// survive that (in its producer snapshot), so the copy, read after the
// producer's next transaction began there, ends nothing.
func TestClusterStaleMarkerAfterAFenceAndUnfenceDoesNotCommitTheNextTransaction(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal,
		"--unsafe-faults", "writetxnmarkers.response=delay:25s#1",
		"--set", "queued.max.requests=1",
		"--set", "broker.session.timeout.ms=2500",
		"--set", "broker.heartbeat.interval.ms=300",
		"--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")...)
	ctl := int32(tc.waitController(15*time.Second)) + 1
	leader := int(ctl - 1)
	const topic = "outcome-fence-stale"
	leaders := tc.createTopicN(leader, topic, 9)
	var ids []string
	var coord int32
	q := int32(-1)
	for k := 0; len(ids) < 4; k++ {
		id := "outcome-fence-stale-" + strconv.Itoa(k)
		c := tc.coordinatorOf(leader, 1, id)
		if len(ids) == 0 {
			if c == ctl && k < 50 {
				continue // the victim must be neither the coordinator nor the controller
			}
			coord = c
		}
		if c == coord {
			ids = append(ids, id)
		}
	}
	for p, l := range leaders {
		if l != coord && l != ctl {
			q = int32(p)
			break
		}
	}
	if q < 0 {
		t.Fatalf("leaders %v: no partition led by a node other than the coordinator %d and the controller %d", leaders, coord, ctl)
	}
	victim := leaders[q]
	var xs []*rawTxn
	for _, id := range ids {
		x := tc.rawInit(id, coord, topic, leaders)
		x.add(q)
		if err := x.produce(q, id+"-first"); err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	// As in TestClusterStaleMarkerFromASlowLeaderDoesNotCommitTheNextTransaction:
	// the first reply is held 25s, and Y's marker stays unread on that
	// connection; the coordinator's retry completes the transactions.
	held := time.Now()
	for _, x := range xs {
		if err := x.end(true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	y := xs[3]
	deadline := time.Now().Add(20 * time.Second)
	for y.tryAdd(topic, q) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Y's next transaction never starts")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Y's first transaction is complete. Now the partition's leader is
	// stopped past its session: fenced, it loses q; continued, it is
	// unfenced and opens q again.
	vpid := pidOf(t, tc.c.Nodes[victim-1].DataDir)
	if err := syscall.Kill(vpid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	_, mt := tc.topicMetadata(leader, topic)
	epoch0 := mt.Partitions[q].LeaderEpoch
	poll(t, 10*time.Second, func() string {
		if _, mt := tc.topicMetadata(leader, topic); mt == nil || mt.Partitions[q].Leader != -1 {
			return "q still has a leader"
		}
		return ""
	})
	syscall.Kill(vpid, syscall.SIGCONT)
	poll(t, 15*time.Second, func() string {
		if _, mt := tc.topicMetadata(leader, topic); mt == nil || mt.Partitions[q].Leader != victim {
			return "q not led by the victim again"
		}
		return ""
	})
	_, mt = tc.topicMetadata(leader, topic)
	t.Logf("node %d fenced and unfenced: %s-%d leader epoch %d -> %d, %v after the markers", victim, topic, q, epoch0, mt.Partitions[q].LeaderEpoch, time.Since(held).Round(time.Second))
	deadline = time.Now().Add(10 * time.Second)
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
	if time.Since(held) > 24*time.Second {
		t.Fatalf("too slow: Y's second write came %v after the markers; the held reply is released at 25s", time.Since(held))
	}
	time.Sleep(time.Until(held.Add(27 * time.Second)))
	if err := y.end(false); err != nil {
		t.Fatalf("EndTxn(abort): %v", err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		hw, lso, err := tc.tryStableOffsets(victim, topic, q)
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
			seen, y.pid, topic, q, victim, tc.dumpLog(victim, topic, q))
	}
	t.Logf("%s-%d holds:\n%s", topic, q, tc.dumpLog(victim, topic, q))
}

// The same without fault injection: the transaction's data partition is
// on a node killed just before EndTxn(commit) and restarted 12 seconds
// later; the committed transaction's offsets become visible.
func TestClusterCommittedTransactionsOffsetsApplyAfterADataLeaderCrash(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal,
		"--set", "broker.session.timeout.ms=2500",
		"--set", "broker.heartbeat.interval.ms=300",
		"--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")...)
	ctl := int32(tc.waitController(15*time.Second)) + 1
	leader := int(ctl - 1)
	const topic = "outcome-offsets-crash"
	leaders := tc.createTopicN(leader, topic, 9)
	var id string
	var coord int32
	r := int32(-1)
	for k := 0; r < 0; k++ {
		id = "outcome-offsets-crash-id-" + strconv.Itoa(k)
		coord = tc.coordinatorOf(leader, 1, id)
		for p, l := range leaders {
			if l != coord && l != ctl {
				r = int32(p)
				break
			}
		}
	}
	var group string
	for k := 0; ; k++ {
		group = "outcome-offsets-crash-group-" + strconv.Itoa(k)
		if tc.coordinatorOf(leader, 0, group) == coord {
			break
		}
	}
	victim := leaders[r]
	x := tc.rawInit(id, coord, topic, leaders)
	x.add(r)
	if err := x.produce(r, "committed"); err != nil {
		t.Fatal(err)
	}
	if err := x.addOffsets(group); err != nil {
		t.Fatal(err)
	}
	if err := x.txnCommitOffset(coord, group, topic, r, 10); err != nil {
		t.Fatal(err)
	}
	tc.c.Kill(int(victim - 1))
	if err := x.end(true); err != nil {
		t.Fatal(err)
	}
	// Down past the coordinator's peer timeout (10s): its first marker
	// write fails after the local one was written.
	time.Sleep(12 * time.Second)
	if err := tc.c.Start(int(victim - 1)); err != nil {
		t.Fatal(err)
	}
	// The transaction completes once the node is back: the id's next
	// transaction can start, and the partition's LSO reaches its HW.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := x.tryAdd(topic, r)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the id's next transaction never starts: %v", err)
		}
	}
	for {
		hw, lso, err := tc.tryStableOffsets(victim, topic, r)
		if err == nil && hw == lso && hw > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LSO %d never reaches HW %d (%v)", lso, hw, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var got int64
	var err error
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if got, err = tc.fetchOffset(coord, group, topic, r, false); err == nil && got == 10 {
			break
		}
	}
	stable, serr := tc.fetchOffset(coord, group, topic, r, true)
	if got != 10 {
		t.Fatalf("the transaction committed, but group %s on node %d has offset %d (%v) for %s-%d; require_stable: %d (%v); want 10\n%s-%d (node %d, killed and restarted) holds:\n%s",
			group, coord, got, err, topic, r, stable, serr, topic, r, victim, tc.dumpLog(victim, topic, r))
	}
}

// Consume-transform-produce commits offsets iff its transaction commits,
// also when the group coordinator's node was fenced and unfenced between
// a transaction's marker and a late copy of it: the copy, on the group's
// __consumer_offsets partition, neither ends the producer's next
// transaction there nor commits its pending offsets.
func TestClusterStaleMarkerAfterAFenceAndUnfenceDoesNotCommitTheNextTransactionsOffsets(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal,
		"--unsafe-faults", "writetxnmarkers.response=delay:25s#1",
		"--set", "queued.max.requests=1",
		"--set", "broker.session.timeout.ms=2500",
		"--set", "broker.heartbeat.interval.ms=300",
		"--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")...)
	ctl := int32(tc.waitController(15*time.Second)) + 1
	leader := int(ctl - 1)
	const topic = "outcome-fence-stale-off"
	leaders := tc.createTopicN(leader, topic, 9)
	var ids []string
	var coord int32
	for k := 0; len(ids) < 4; k++ {
		id := "outcome-fence-stale-off-" + strconv.Itoa(k)
		c := tc.coordinatorOf(leader, 1, id)
		if len(ids) == 0 {
			if c == ctl && k < 50 {
				continue
			}
			coord = c
		}
		if c == coord {
			ids = append(ids, id)
		}
	}
	q := int32(-1)
	for p, l := range leaders {
		if l != coord && l != ctl {
			q = int32(p)
			break
		}
	}
	if q < 0 {
		t.Fatalf("leaders %v: no partition led by a node other than the coordinator %d and the controller %d", leaders, coord, ctl)
	}
	gnode := leaders[q]
	var group string
	for k := 0; ; k++ {
		group = "outcome-fence-stale-group-" + strconv.Itoa(k)
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
	// Y's first transaction completes (the coordinator's retry, after its
	// 10s peer timeout); then the group's node is fenced and unfenced.
	deadline := time.Now().Add(20 * time.Second)
	for y.addOffsets(group) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Y's next transaction never starts")
		}
	}
	vpid := pidOf(t, tc.c.Nodes[gnode-1].DataDir)
	if err := syscall.Kill(vpid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, func() string {
		if _, mt := tc.topicMetadata(leader, topic); mt == nil || mt.Partitions[q].Leader != -1 {
			return "q still has a leader"
		}
		return ""
	})
	syscall.Kill(vpid, syscall.SIGCONT)
	poll(t, 15*time.Second, func() string {
		if _, mt := tc.topicMetadata(leader, topic); mt == nil || mt.Partitions[q].Leader != gnode {
			return "q not led by its node again"
		}
		return ""
	})
	// Y's second transaction: offset 42, to be aborted.
	if err := y.txnCommitOffset(gnode, group, topic, q, 42); err != nil {
		t.Fatalf("Y's second TxnOffsetCommit: %v", err)
	}
	if time.Since(held) > 24*time.Second {
		t.Fatalf("too slow: Y's second offset commit came %v after the markers; the held reply is released at 25s", time.Since(held))
	}
	time.Sleep(time.Until(held.Add(27 * time.Second)))
	if err := y.end(false); err != nil {
		t.Fatalf("EndTxn(abort): %v", err)
	}
	time.Sleep(time.Second)
	var got int64 = -2
	var err error
	for try := 0; try < 20; try++ {
		if got, err = tc.fetchOffset(gnode, group, topic, q, true); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != 10 {
		t.Fatalf("group %s (coordinator node %d, fenced and unfenced) has offset %d (%v) for %s-%d; want 10 (the committed transaction's), not 42 (the aborted one's)",
			group, gnode, got, err, topic, q)
	}
}

// An aborted transaction's offsets are never committed, also when its
// marker write was retried after the local offsets marker was applied:
// the group shard drops them as soon as that marker is durable, so the
// producer's next transaction, committing another partition's offset,
// cannot commit them.
func TestClusterAbortedTransactionsOffsetsAreNeverCommittedByTheNextTransaction(t *testing.T) {
	tc := startCluster(t, 3, append(unreplicatedInternal,
		"--unsafe-faults", "writetxnmarkers.response=delay:11s#1",
		"--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")...)
	leader := tc.waitController(15 * time.Second)
	const topic = "outcome-offsets-abort"
	leaders := tc.createTopicN(leader, topic, 6)
	id := "outcome-offsets-abort-id"
	coord := tc.coordinatorOf(leader, 1, id)
	r2, r := partitionsLedBy(t, leaders, coord)
	var group string
	for k := 0; ; k++ {
		group = "outcome-offsets-abort-group-" + strconv.Itoa(k)
		if tc.coordinatorOf(leader, 0, group) == coord {
			break
		}
	}
	x := tc.rawInit(id, coord, topic, leaders)
	// Transaction 1: writes r (on another node), offset 42 for r, aborted.
	x.add(r)
	if err := x.produce(r, "aborted"); err != nil {
		t.Fatal(err)
	}
	if err := x.addOffsets(group); err != nil {
		t.Fatal(err)
	}
	if err := x.txnCommitOffset(coord, group, topic, r, 42); err != nil {
		t.Fatal(err)
	}
	if err := x.end(false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := x.tryAdd(topic, r2) // transaction 2 begins once 1 is complete
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the id's next transaction never starts: %v", err)
		}
	}
	// Transaction 2: writes r2 (local), offset 5 for r2 only, committed.
	if err := x.produce(r2, "committed"); err != nil {
		t.Fatal(err)
	}
	if err := x.addOffsets(group); err != nil {
		t.Fatal(err)
	}
	if err := x.txnCommitOffset(coord, group, topic, r2, 5); err != nil {
		t.Fatal(err)
	}
	if err := x.end(true); err != nil {
		t.Fatal(err)
	}
	var got2 int64
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if got2, _ = tc.fetchOffset(coord, group, topic, r2, true); got2 == 5 {
			break
		}
	}
	if got2 != 5 {
		t.Fatalf("transaction 2's offset for %s-%d: %d, want 5", topic, r2, got2)
	}
	got, err := tc.fetchOffset(coord, group, topic, r, true)
	if got != -1 {
		t.Fatalf("group %s (node %d) has offset %d (%v) for %s-%d, which only the aborted transaction 1 committed; want none (-1)",
			group, coord, got, err, topic, r)
	}
}
