package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/txn"
)

// An OffsetDelete tombstone written after a transaction's pending offset
// drops that pending offset live (group.dropOffset). The cleaner stops at
// the last stable offset, so the tombstone written after the open
// transaction's record stays (whatever delete.retention.ms says) and a
// restart, replaying the pending record, the tombstone and the COMMIT
// marker, agrees with the live group: the offset stays deleted.
func TestTombstonePastTheLSOKeepsADeletedOffsetDeleted(t *testing.T) {
	tombstoneCase(t, "true", false)
}

// The same with no admin request: the broker default
// log.cleaner.delete.retention.ms=0 set at start (--set).
func TestTombstonePastTheLSOWithBrokerDefaultRetentionKeepsADeletedOffsetDeleted(t *testing.T) {
	tombstoneCase(t, "true", true)
}

// The same sequence without the cleaner agrees live and after restart.
func TestDeletedOffsetStaysDeletedWithoutTheCleaner(t *testing.T) {
	tombstoneCase(t, "false", false)
}

func tombstoneCase(t *testing.T, cleaner string, brokerDefault bool) {
	dir := t.TempDir()
	settings := map[string]string{
		"offsets.topic.segment.bytes": "200",
		"log.cleaner.backoff.ms":      "20",
		"log.cleaner.enable":          cleaner,
	}
	if brokerDefault {
		settings["log.cleaner.delete.retention.ms"] = "0"
	}
	a, err := openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := newClient(t, a.addr)
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"t", "u"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	// A plain commit creates group g (and __consumer_offsets).
	first := kadm.Offsets{}
	first.Add(kadm.Offset{Topic: "t", Partition: 0, At: 3, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "g", first); err != nil || r.Error() != nil {
		t.Fatalf("plain commit: %v %v", err, r.Error())
	}
	// An admin lowers delete.retention.ms of __consumer_offsets (accepted).
	zero := "0"
	if brokerDefault {
		zero = ""
	}
	if !brokerDefault {
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "delete.retention.ms", Value: &zero}}, "__consumer_offsets")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Err != nil {
				t.Fatalf("delete.retention.ms=0: %v", r.Err)
			}
		}
	}

	id := "tx"
	pid, epoch := initProducer(ctx, t, cl, id)
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, "g"
	if r, err := add.RequestWith(ctx, cl); err != nil || r.ErrorCode != 0 {
		t.Fatal(err, r)
	}
	c := kmsg.NewPtrTxnOffsetCommitRequest()
	c.TransactionalID, c.Group, c.ProducerID, c.ProducerEpoch, c.Generation = id, "g", pid, epoch, -1
	c.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, LeaderEpoch: -1}}}}
	if r, err := c.RequestWith(ctx, cl); err != nil || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal(err, r)
	}
	// OffsetDelete of t-0 while the transaction is open: the committed
	// offset and the pending one written before it go (live).
	del := kmsg.NewPtrOffsetDeleteRequest()
	del.Group = "g"
	del.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	if r, err := del.RequestWith(ctx, cl); err != nil || r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal(err, r)
	}
	// Commits of another partition seal the segment holding the tombstone.
	time.Sleep(5 * time.Millisecond)
	for i := range 20 {
		more := kadm.Offsets{}
		more.Add(kadm.Offset{Topic: "u", Partition: 0, At: int64(i), LeaderEpoch: -1})
		if r, err := adm.CommitOffsets(ctx, "g", more); err != nil || r.Error() != nil {
			t.Fatal(err, r.Error())
		}
	}
	time.Sleep(time.Second) // cleaner passes while the transaction is open

	if code := endTxn(ctx, t, cl, id, pid, epoch, true); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if st, ok := waitTxnState(ctx, t, cl, id, string(txn.CompleteCommit), 10*time.Second); !ok {
		t.Fatal(st)
	}
	fetch := func(cl *kgo.Client) (int64, bool) {
		offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		o, ok := offs.Lookup("t", 0)
		if ok && o.At < 0 {
			ok = false
		}
		return o.At, ok
	}
	before, okBefore := fetch(cl)
	a.close()
	a2, err := openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	after, okAfter := fetch(newClient(t, a2.addr))
	t.Logf("group g offset of t-0: live %d (present %v), after restart %d (present %v)", before, okBefore, after, okAfter)
	if okBefore != okAfter || before != after {
		t.Fatalf("the deleted offset of t-0 changed across a restart: live %d (present %v), after restart %d (present %v)", before, okBefore, after, okAfter)
	}
}
