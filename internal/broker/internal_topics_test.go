package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/group"
)

// Invariant 4: no request waits unboundedly — CONCURRENT_TRANSACTIONS or
// an answer within the coordinator's bound (maxSettleWait = 1s). While a
// transaction's markers are being written slowly, a new instance of the
// SAME transactional id calls InitProducerId (what every restarted
// producer does first). AddPartitions/EndTxn of that id are bounded by
// the settle wait; InitProducerId must be too.
func TestInitProducerIDOfACompletingIDIsBounded(t *testing.T) {
	const delay = 12 * time.Second
	in, err := faults.Parse(fmt.Sprintf("txn.before-markers=delay:%s#1", delay), 1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := openAdvBrokerWith(t, t.TempDir(), nil, in)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := clientWithTopic(ctx, t, a.addr, "t")
	pid, epoch := initProducer(ctx, t, cl, "A")
	if code := addPartition(ctx, t, cl, "A", pid, epoch, "t", 0); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := endTxn(ctx, t, cl, "A", pid, epoch, true); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	time.Sleep(100 * time.Millisecond) // the completion is in its delay

	c := newClient(t, a.addr)
	id := "A"
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = &id, 60000
	start := time.Now()
	resp, err := req.RequestWith(ctx, c)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("InitProducerId: %v after %v", err, took)
	}
	t.Logf("InitProducerId of the same id: %v (pid %d epoch %d) after %v", kerr.ErrorForCode(resp.ErrorCode), resp.ProducerID, resp.ProducerEpoch, took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("InitProducerId of a new instance of %q waited %v for the previous transaction's marker write (bound: 1s, then CONCURRENT_TRANSACTIONS)", id, took.Round(time.Millisecond))
	}
}

// Invariant 2: EndTxn(commit) answered ⇒ the transaction commits, also
// across a restart. DeleteRecords is accepted on __transaction_state (an
// internal topic) would lose the PrepareCommit record that decided the
// commit before the markers are written, and recovery would never learn
// of the transaction. DeleteRecords on an internal topic is refused, as
// in Kafka.
func TestDeleteRecordsOnTxnStateIsRefusedAndTheCommitCompletes(t *testing.T) {
	in, err := faults.Parse("txn.before-markers=delay:60s#1", 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, err := openAdvBrokerWith(t, dir, nil, in)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := clientWithTopic(ctx, t, a.addr, "t")
	id := "A"
	pid, epoch := initProducer(ctx, t, cl, id)
	if code := addPartition(ctx, t, cl, id, pid, epoch, "t", 0); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := produceRaw(ctx, t, cl, &id, "t", batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0}, "committed"); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := endTxn(ctx, t, cl, id, pid, epoch, true); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	t.Logf("EndTxn(commit) answered OK")

	del := kmsg.NewPtrDeleteRecordsRequest()
	del.TimeoutMillis = 10000
	del.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "__transaction_state", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: -1}}}}
	dresp, err := del.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if dp := dresp.Topics[0].Partitions[0]; dp.ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("DeleteRecords on __transaction_state-0: %v, low watermark %d; want INVALID_TOPIC_EXCEPTION", kerr.ErrorForCode(dp.ErrorCode), dp.LowWatermark)
	}
	cl.Close()
	a.close()

	b, err := openAdvBroker(t, dir, map[string]string{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	cl2 := newClient(t, b.addr)
	deadline := time.Now().Add(5 * time.Second)
	var hw, lso int64
	for time.Now().Before(deadline) {
		hw, lso = offsetsOf(ctx, t, cl2, "t")
		if lso >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := txnState(ctx, t, cl2, id)
	t.Logf("after restart: t-0 HW %d LSO %d; DescribeTransactions(%q): %s %v", hw, lso, id, st.State, kerr.ErrorForCode(st.ErrorCode))
	if lso < 2 {
		t.Errorf("EndTxn(commit) was answered, but 5s after the restart the commit is not visible: t-0 LSO %d (HW %d); the transaction is unknown to the coordinator and open in the partition for ever", lso, hw)
	}
}

// The same root cause for group offsets: a committed offset (here by a
// committed transaction) is gone after DeleteRecords on
// __consumer_offsets and a clean restart.
func TestDeleteRecordsOnConsumerOffsetsIsRefusedAndOffsetsStay(t *testing.T) {
	dir := t.TempDir()
	a, err := openAdvBroker(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := newClient(t, a.addr)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 42, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "g", offs); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}
	del := kmsg.NewPtrDeleteRecordsRequest()
	del.TimeoutMillis = 10000
	del.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "__consumer_offsets", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: -1}}}}
	dresp, err := del.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	dp := dresp.Topics[0].Partitions[0]
	if dp.ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("DeleteRecords on __consumer_offsets-0: %v; want INVALID_TOPIC_EXCEPTION", kerr.ErrorForCode(dp.ErrorCode))
	}
	t.Logf("DeleteRecords on __consumer_offsets-0: %v, low watermark %d", kerr.ErrorForCode(dp.ErrorCode), dp.LowWatermark)
	cl.Close()
	a.close()
	b, err := openAdvBroker(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := kadm.NewClient(newClient(t, b.addr)).FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	o, ok := got.Lookup("t", 0)
	t.Logf("after restart: committed offset of g t-0: %+v (found %v)", o.At, ok)
	if !ok || o.At != 42 {
		t.Errorf("committed offset 42 of group g lost after DeleteRecords on __consumer_offsets and a restart (got %d, found %v)", o.At, ok)
	}
}

// Without any fault point: an open transaction whose producer dies is
// never aborted once its state record is removed by DeleteRecords on
// __transaction_state and the broker restarts cleanly; the partition's
// LSO is pinned at its first offset past the transaction timeout, so a
// later, committed transaction of another producer is never visible
// read_committed (invariants 2 and 5).
func TestTimedOutTransactionIsAbortedDespiteDeleteRecordsOnTxnState(t *testing.T) {
	dir := t.TempDir()
	settings := map[string]string{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"}
	a, err := openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := clientWithTopic(ctx, t, a.addr, "t")
	initWithTimeout := func(id string) (int64, int16) {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = &id, 1000
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatal(err, resp)
		}
		return resp.ProducerID, resp.ProducerEpoch
	}
	idA := "A"
	pid, epoch := initWithTimeout(idA)
	if code := addPartition(ctx, t, cl, idA, pid, epoch, "t", 0); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := produceRaw(ctx, t, cl, &idA, "t", batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0}, "open"); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	del := kmsg.NewPtrDeleteRecordsRequest()
	del.TimeoutMillis = 10000
	del.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "__transaction_state", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: -1}}}}
	if _, err := del.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	a.close()

	b, err := openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	cl = newClient(t, b.addr)
	idB := "B"
	pidB, epochB := initWithTimeout(idB)
	if code := addPartition(ctx, t, cl, idB, pidB, epochB, "t", 0); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := produceRaw(ctx, t, cl, &idB, "t", batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pidB, ProducerEpoch: epochB, BaseSequence: 0}, "committed"); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := endTxn(ctx, t, cl, idB, pidB, epochB, true); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	time.Sleep(4 * time.Second) // 4x A's transaction timeout
	hw, lso := offsetsOf(ctx, t, cl, "t")
	t.Logf("4s after B's commit (A's timeout 1s): HW %d LSO %d", hw, lso)
	if lso < hw {
		t.Errorf("LSO %d pinned below HW %d by a transaction the coordinator no longer knows: B's answered commit is not visible read_committed", lso, hw)
	}
}

// The coordinator places an id's records by transaction.state.log.num.partitions
// (the setting: put in txn_coordinator.go), not by the partition count
// of the existing __transaction_state (Kafka uses the topic's count once
// it exists), while replay reads the partitions in index order. Lower
// the setting after deployment: the id's next records go to a lower
// partition than its earlier ones, and at the next restart the older
// record is replayed last. The epoch regresses: the fenced instance is
// un-fenced and the current one is fenced (invariant 1).
func TestTxnStatePartitionSettingChangeKeepsZombiesFenced(t *testing.T) {
	id := ""
	for i := 0; ; i++ {
		id = fmt.Sprintf("x%d", i)
		if group.PartitionFor(id, 4) == 3 && group.PartitionFor(id, 2) < 3 {
			break
		}
	}
	dir := t.TempDir()
	ctx := testCtx(t)
	a, err := openAdvBroker(t, dir, map[string]string{"transaction.state.log.num.partitions": "4"})
	if err != nil {
		t.Fatal(err)
	}
	cl := clientWithTopic(ctx, t, a.addr, "t")
	zpid, zepoch := initProducer(ctx, t, cl, id) // the instance to be fenced
	cl.Close()
	a.close()

	second := "2"
	b, err := openAdvBroker(t, dir, map[string]string{"transaction.state.log.num.partitions": second})
	if err != nil {
		t.Fatal(err)
	}
	cl = newClient(t, b.addr)
	npid, nepoch := initProducer(ctx, t, cl, id) // a new instance fences it
	t.Logf("zombie %d/%d, new instance %d/%d", zpid, zepoch, npid, nepoch)
	if code := addPartition(ctx, t, cl, id, zpid, zepoch, "t", 0); code == 0 {
		t.Fatal("zombie not fenced before the restart")
	}
	cl.Close()
	b.close()

	c, err := openAdvBroker(t, dir, map[string]string{"transaction.state.log.num.partitions": second})
	if err != nil {
		t.Fatal(err)
	}
	cl = newClient(t, c.addr)
	st := txnState(ctx, t, cl, id)
	t.Logf("after restart: %s %d/%d", st.State, st.ProducerID, st.ProducerEpoch)
	zcode := addPartition(ctx, t, cl, id, zpid, zepoch, "t", 0)
	ncode := addPartition(ctx, t, cl, id, npid, nepoch, "t", 0)
	t.Logf("AddPartitionsToTxn: zombie %v, current instance %v", kerr.ErrorForCode(zcode), kerr.ErrorForCode(ncode))
	if zcode == 0 {
		t.Errorf("the fenced instance %d/%d added a partition after the restart", zpid, zepoch)
	}
	if ncode != 0 {
		t.Errorf("the current instance %d/%d is refused after the restart: %v", npid, nepoch, kerr.ErrorForCode(ncode))
	}
}

// A marker written into __consumer_offsets through WriteTxnMarkers is
// applied by the group shard as the coordinator's own markers are, so the
// live state equals the state replayed at restart: here a client's ABORT
// marker drops the producer's pending offset, live and after a restart.
func TestWriteTxnMarkersOnOffsetsLiveEqualsRestart(t *testing.T) {
	dir := t.TempDir()
	a, err := openAdvBroker(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := clientWithTopic(ctx, t, a.addr, "t")
	id := "A"
	pid, epoch := initProducer(ctx, t, cl, id)
	reviewTxnOffset(ctx, t, cl, id, pid, epoch, "g", "t", 7)
	wm := kmsg.NewPtrWriteTxnMarkersRequest()
	wm.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: pid, ProducerEpoch: epoch, Committed: false, Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "__consumer_offsets", Partitions: []int32{0}}}}}
	wr, err := wm.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("WriteTxnMarkers(abort) on __consumer_offsets-0: %v", kerr.ErrorForCode(wr.Markers[0].Topics[0].Partitions[0].ErrorCode))
	if code := endTxn(ctx, t, cl, id, pid, epoch, true); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if _, ok := waitTxnState(ctx, t, cl, id, "CompleteCommit", 5*time.Second); !ok {
		t.Fatal("commit did not complete")
	}
	live := reviewCommitted(ctx, t, a.addr, "g", "t")
	cl.Close()
	a.close()
	b, err := openAdvBroker(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	restarted := reviewCommitted(ctx, t, b.addr, "g", "t")
	t.Logf("committed offset of g t-0: live %d, after restart %d", live, restarted)
	if live != restarted {
		t.Errorf("live and restarted group state disagree: %d vs %d", live, restarted)
	}
}

// The internal topics stay compacted: a change of cleanup.policy that
// would let retention delete the coordinators' state records is refused
// (INVALID_CONFIG), and a retention setting alone deletes nothing, so a
// commit answered before a restart is still completed after it.
func TestInternalTopicsKeepTheirStateWhateverTheirConfigs(t *testing.T) {
	in, err := faults.Parse("txn.before-markers=delay:60s#1", 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, err := openAdvBrokerWith(t, dir, map[string]string{"log.retention.check.interval.ms": "100"}, in)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := newClient(t, a.addr)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	id := "A"
	pid, epoch := initProducer(ctx, t, cl, id)
	if code := addPartition(ctx, t, cl, id, pid, epoch, "t", 0); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if _, err := adm.CommitOffsets(ctx, "g", kadm.OffsetsFromRecords(kgo.Record{Topic: "t", Partition: 0, Offset: 41})); err != nil {
		t.Fatal(err)
	}
	if code := produceRaw(ctx, t, cl, &id, "t", batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0}, "committed"); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := endTxn(ctx, t, cl, id, pid, epoch, true); code != 0 { // markers held by the fault point
		t.Fatal(kerr.ErrorForCode(code))
	}
	policy, one := "compact,delete", "1"
	for _, topic := range []string{"__transaction_state", "__consumer_offsets"} {
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: &policy}}, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if !errors.Is(r.Err, kerr.InvalidConfig) {
				t.Fatalf("cleanup.policy=%s on %s: %v, want INVALID_CONFIG", policy, topic, r.Err)
			}
		}
		rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "cleanup.policy"}}, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if !errors.Is(r.Err, kerr.InvalidConfig) {
				t.Fatalf("removing cleanup.policy of %s: %v, want INVALID_CONFIG", topic, r.Err)
			}
		}
		rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &one}}, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Err != nil {
				t.Fatalf("retention.ms on %s: %v", topic, r.Err)
			}
		}
	}
	// Several retention passes run; the state records stay.
	for _, topic := range []string{"__transaction_state", "__consumer_offsets"} {
		for i := 0; i < 5; i++ {
			so, err := adm.ListStartOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			so.Each(func(o kadm.ListedOffset) {
				if o.Offset != 0 {
					t.Fatalf("%s-%d log start %d: retention deleted coordinator state", topic, o.Partition, o.Offset)
				}
			})
			time.Sleep(100 * time.Millisecond) // a retention pass runs every 100 ms
		}
	}
	cl.Close()
	a.close()

	b, err := openAdvBroker(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	cl = newClient(t, b.addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		hw, lso := offsetsOf(ctx, t, cl, "t")
		if lso == hw && hw == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the commit answered before the restart is not complete after it: t-0 HW %d, LSO %d", hw, lso)
		}
		time.Sleep(50 * time.Millisecond)
	}
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("t", 0); !ok || o.At != 42 {
		t.Fatalf("group g's committed offset after the restart: %+v, want 42 (the record at 41 consumed)", o)
	}
}

// clientWithTopic connects to addr and creates topic with one partition.
func clientWithTopic(ctx context.Context, t *testing.T, addr, topic string) *kgo.Client {
	t.Helper()
	cl := newClient(t, addr)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	return cl
}
