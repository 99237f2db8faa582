package broker_test

// KIP-890 verification against the markers, on a real broker over a real
// socket. A test hook runs between the coordinator's confirmation that a
// write belongs to an open transaction and the write's append; there the
// test ends the transaction, markers and all, so the write arrives late
// at its partition every time.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/broker"
	"github.com/weir-broker/weir/internal/txn"
)

// A batch the coordinator confirmed while its transaction was open, but
// which reaches the partition after that transaction's marker, is
// refused: appended, it would open a transaction the coordinator knows
// nothing of and hold the last stable offset back for ever (the shape of
// KAFKA-17754).
func TestBatchVerifiedBeforeTheMarkerIsRefusedAfterIt(t *testing.T) {
	b, addr := startBroker(t)
	ctx := testCtx(t)
	cl, other := newClient(t, addr), newClient(t, addr)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	pid, epoch := initProducer(ctx, t, cl, "tx")
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = "tx", pid, epoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	resp, err := add.RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("AddPartitionsToTxn: %v %+v", err, resp)
	}
	if code := produceTxn(ctx, t, cl, "tx", pid, epoch, 0); code != 0 {
		t.Fatalf("first batch: %v", kerr.ErrorForCode(code))
	}

	hookErr := endInHook(t, b, "t", func() error { return commitAndWait(ctx, other, "tx", pid, epoch) })
	code := produceTxn(ctx, t, cl, "tx", pid, epoch, 1)
	if err := <-hookErr; err != nil {
		t.Fatalf("ending the transaction in the hook: %v", err)
	}
	if code != kerr.InvalidTxnState.Code {
		t.Fatalf("batch arriving after the marker: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}

	// The log ends with the marker (batch at 0, marker at 1) and no
	// transaction is open.
	adm := kadm.NewClient(cl)
	end, err := adm.ListEndOffsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	hw, _ := end.Lookup("t", 0)
	lso, _ := stable.Lookup("t", 0)
	if hw.Offset != 2 || lso.Offset != 2 {
		t.Fatalf("high watermark %d, last stable offset %d; want 2 and 2 (nothing after the marker)", hw.Offset, lso.Offset)
	}
}

// The same for TxnOffsetCommit: offsets the coordinator confirmed while
// the transaction was open, but which reach the group's partition after
// its marker, are refused instead of staying pending for ever.
func TestTxnOffsetCommitVerifiedBeforeTheMarkerIsRefusedAfterIt(t *testing.T) {
	b, addr := startBroker(t)
	ctx := testCtx(t)
	cl, other := newClient(t, addr), newClient(t, addr)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	pid, epoch := initProducer(ctx, t, cl, "tx")
	addOffsets := kmsg.NewPtrAddOffsetsToTxnRequest()
	addOffsets.TransactionalID, addOffsets.ProducerID, addOffsets.ProducerEpoch, addOffsets.Group = "tx", pid, epoch, "g"
	if resp, err := addOffsets.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %+v", err, resp)
	}

	hookErr := endInHook(t, b, "__consumer_offsets", func() error { return commitAndWait(ctx, other, "tx", pid, epoch) })
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = "tx", "g", pid, epoch
	commit.Generation = -1
	commit.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, LeaderEpoch: -1}}}}
	// Without retries: the first answer must be the refusal.
	resp, err := commit.RequestWith(ctx, newClient(t, addr, kgo.RequestRetries(0)))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-hookErr; err != nil {
		t.Fatalf("ending the transaction in the hook: %v", err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTxnState.Code {
		t.Fatalf("offsets arriving after the marker: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}

	// Nothing is pending for the group and nothing was committed.
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.RequireStable = true
	topics := []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	fetch.Group, fetch.Topics = "g", topics // up to v7
	fetch.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
	fresp, err := fetch.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	code, offset := int16(-1), int64(0)
	if len(fresp.Groups) > 0 {
		p := fresp.Groups[0].Topics[0].Partitions[0]
		code, offset = p.ErrorCode, p.Offset
	} else {
		p := fresp.Topics[0].Partitions[0]
		code, offset = p.ErrorCode, p.Offset
	}
	if code != 0 || offset != -1 {
		t.Fatalf("OffsetFetch(require_stable) of the group: %v at %d, want no error and no offset", kerr.ErrorForCode(code), offset)
	}
}

// startBroker runs a broker with one partition per internal topic on a
// fresh directory and a local listener.
func startBroker(t *testing.T) (*broker.Broker, string) {
	t.Helper()
	return serveBroker(t, map[string]string{"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"})
}

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return dialBroker(t, addr, opts...)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func initProducer(ctx context.Context, t *testing.T, cl *kgo.Client, id string) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = &id, 60000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v %+v", err, resp)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// produceTxn writes one transactional record at seq to t-0 (acks=all)
// and returns the partition's error code.
func produceTxn(ctx context.Context, t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, seq int32) int16 {
	t.Helper()
	records := batch.Build(batch.Spec{
		Attributes: batch.AttrTransactional, Timestamp: time.Now().UnixMilli(),
		ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq,
	}, []batch.Record{{Value: []byte("v")}})
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID, req.Acks, req.TimeoutMillis = &id, -1, 30000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: records}}}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// endInHook makes end run once, in the hook, for the first write to a
// partition of topic; the channel yields its error once the hook has run.
func endInHook(t *testing.T, b *broker.Broker, topic string, end func() error) <-chan error {
	ch := make(chan error, 1)
	var once sync.Once
	broker.SetAfterTxnVerify(b, func(tp txn.TopicPartition) {
		if tp.Topic == topic {
			once.Do(func() { ch <- end() })
		}
	})
	t.Cleanup(func() { broker.SetAfterTxnVerify(b, nil) })
	return ch
}

// commitAndWait commits the transaction of id and waits until its
// markers are written (the coordinator reports CompleteCommit).
func commitAndWait(ctx context.Context, cl *kgo.Client, id string, pid int64, epoch int16) error {
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = id, pid, epoch, true
	resp, err := end.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for {
		d := kmsg.NewPtrDescribeTransactionsRequest()
		d.TransactionalIDs = []string{id}
		resp, err := d.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		if resp.TransactionStates[0].State == string(txn.CompleteCommit) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond): // poll
		}
	}
}
