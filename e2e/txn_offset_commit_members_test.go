package e2e

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// txnOffsetCommitAt sends a TxnOffsetCommit at exactly version v through
// a client that speaks no higher version of it, and returns the error
// code of the one partition it commits.
func txnOffsetCommitAt(t *testing.T, addr string, v int16, commit *kmsg.TxnOffsetCommitRequest) int16 {
	t.Helper()
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(commit.Key(), v)
	cl := newClient(t, addr, kgo.MaxVersions(versions))
	resp, err := commit.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatalf("TxnOffsetCommit v%d: %v", v, err)
	}
	if resp.Version != v {
		t.Fatalf("TxnOffsetCommit sent at v%d, want v%d", resp.Version, v)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// committedOffset is the group's visible committed offset of topic-0, or
// -1 when it has none.
func committedOffset(t *testing.T, cl *kgo.Client, group, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{0}}}
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("OffsetFetch: %v %v", err, kerr.ErrorForCode(resp.ErrorCode))
	}
	if len(resp.Topics) == 0 || len(resp.Topics[0].Partitions) == 0 {
		return -1
	}
	rp := resp.Topics[0].Partitions[0]
	if rp.ErrorCode != 0 {
		t.Fatalf("OffsetFetch %s-%d: %v", topic, rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
	}
	return rp.Offset
}

// awaitCommitted waits until the transaction's marker has made offset the
// group's committed offset of topic-0: EndTxn is answered once the
// outcome is decided, and the marker reaches __consumer_offsets after.
func awaitCommitted(t *testing.T, cl *kgo.Client, group, topic string, offset int64) {
	t.Helper()
	ctx := testCtx(t)
	for got := committedOffset(t, cl, group, topic); got != offset; got = committedOffset(t, cl, group, topic) {
		if ctx.Err() != nil {
			t.Fatalf("committed offset %d after the transaction committed, want %d", got, offset)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitStable waits until no transaction has offsets of topic-0 pending
// in group (OffsetFetch with require_stable, KIP-447).
func awaitStable(t *testing.T, cl *kgo.Client, group, topic string) {
	t.Helper()
	ctx := testCtx(t)
	for {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group, req.RequireStable = group, true
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{0}}}
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode == 0 && len(resp.Topics) == 1 && resp.Topics[0].Partitions[0].ErrorCode == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("offsets still pending: %v %+v", err, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kafka exempts a transactional offset commit that names no member (v0-v2
// carry none; v3 with an empty member id and generation -1, as KafkaJS's
// sendOffsets and sarama's AddMessageToTxn send) from the member and
// generation check, so a producer outside the group can commit for it
// while it has live members (KIP-98). One that names a member is checked
// (KIP-447): an unknown member, a stale generation and a fenced static
// instance are refused. Accepted offsets stay invisible until the
// transaction commits, and an aborted transaction's never appear.
func TestTxnOffsetCommitWithoutMemberIDIsAcceptedWhileTheGroupHasMembers(t *testing.T) {
	b, _ := startBroker(t, groupSettings)
	addr := b.Addr()
	adm := newAdmin(t, addr)
	createTopic(t, adm, "in", 1, nil)
	createTopic(t, adm, "out", 1, nil)

	const group = "ctp"
	member := newClient(t, addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics("in"), kgo.InstanceID("static-1"))
	ctx := testCtx(t)
	for !stableWith(t, adm, group, 1) {
		if ctx.Err() != nil {
			t.Fatal("the group never became stable with its member")
		}
		time.Sleep(50 * time.Millisecond)
	}
	memberID, generation := member.GroupMetadata()

	const txnID = "ctp-producer"
	prod := txnProducer(t, addr, txnID, kgo.DefaultProduceTopic("out"))
	viewer := newClient(t, addr)

	// inTxn opens a transaction with one record and the group's offsets
	// added, sends commit at version v, and returns its code.
	inTxn := func(v int16, offset int64, memberID string, generation int32, instanceID *string) int16 {
		t.Helper()
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, kgo.StringRecord("r")).FirstErr(); err != nil {
			t.Fatal(err)
		}
		pid, epoch, err := prod.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		add := kmsg.NewPtrAddOffsetsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, pid, epoch, group
		if resp, err := add.RequestWith(ctx, prod); err != nil || resp.ErrorCode != 0 {
			t.Fatalf("AddOffsetsToTxn: %v %+v", err, resp)
		}
		commit := kmsg.NewPtrTxnOffsetCommitRequest()
		commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = txnID, group, pid, epoch
		commit.Generation, commit.MemberID, commit.InstanceID = generation, memberID, instanceID
		p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset = 0, offset
		commit.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "in", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{p}}}
		return txnOffsetCommitAt(t, addr, v, commit)
	}
	end := func(commit kgo.TransactionEndTry) {
		t.Helper()
		if err := prod.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}

	want := int64(-1)
	for i, v := range []int16{0, 2, 3} {
		offset := int64(10 * (i + 1))
		if code := inTxn(v, offset, "", -1, nil); code != 0 {
			t.Fatalf("v%d without a member id, while the group has a live member: %v, want it accepted", v, kerr.ErrorForCode(code))
		}
		if got := committedOffset(t, viewer, group, "in"); got != want {
			t.Fatalf("v%d: committed offset %d before the transaction ended, want %d", v, got, want)
		}
		end(kgo.TryCommit)
		want = offset
		awaitCommitted(t, viewer, group, "in", want)
	}

	if code := inTxn(3, 99, "", -1, nil); code != 0 {
		t.Fatalf("v3 without a member id: %v", kerr.ErrorForCode(code))
	}
	end(kgo.TryAbort)
	awaitStable(t, viewer, group, "in")
	if got := committedOffset(t, viewer, group, "in"); got != want {
		t.Fatalf("committed offset %d after an aborted transaction, want %d", got, want)
	}

	instance := "static-1"
	for _, c := range []struct {
		name       string
		memberID   string
		generation int32
		instanceID *string
		want       error
	}{
		{"an unknown member", "nobody", generation, nil, kerr.UnknownMemberID},
		{"the live member at a stale generation", memberID, generation - 1, nil, kerr.IllegalGeneration},
		{"a member id with generation -1", memberID, -1, nil, kerr.IllegalGeneration},
		{"the member's static instance under another member id", "nobody", generation, &instance, kerr.FencedInstanceID},
	} {
		code := inTxn(3, 77, c.memberID, c.generation, c.instanceID)
		end(kgo.TryAbort)
		if code != c.want.(*kerr.Error).Code {
			t.Errorf("v3 from %s: %v, want %v", c.name, kerr.ErrorForCode(code), c.want)
		}
	}
	if code := inTxn(3, 50, memberID, generation, &instance); code != 0 {
		t.Fatalf("v3 from the live member at its generation: %v", kerr.ErrorForCode(code))
	}
	end(kgo.TryCommit)
	awaitCommitted(t, viewer, group, "in", 50)
}
