package e2e

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A transaction's offsets are the group's, so a transactional producer
// may send them only with READ on the group (issue 16: "AddOffsetsToTxn
// and TxnOffsetCommit need the group too"; JoinGroup needs it as well):
// holding WRITE on its transactional id and its output and READ on its
// input, and DESCRIBE on the group only, a user gets GROUP_AUTHORIZATION_FAILED
// from JoinGroup, AddOffsetsToTxn and TxnOffsetCommit, and gets through
// each once READ on the group is granted.
func TestTransactionalOffsetsNeedReadOnTheGroup(t *testing.T) {
	addr, _, app := aclBroker(t)
	props := adminProps(t)
	weir := func(args ...string) {
		t.Helper()
		if out, err := runWeir(t, "", append(args, "--brokers", addr, "--command-config", props)...); err != nil {
			t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	weir("topic", "create", "in", "--partitions", "1")
	weir("topic", "create", "out", "--partitions", "1")
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "read", "--topic", "in")
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "write", "--topic", "out")
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "write", "--transactional-id", "tx-1")
	// DESCRIBE lets the client find the group's coordinator (FindCoordinator
	// needs it), so each request below reaches its own check.
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "describe", "--group", "pipeline")
	ctx := testCtx(t)

	cl := newClient(t, addr, app, kgo.TransactionalID("tx-1"), kgo.RequestRetries(0))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "out", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("a transactional write with WRITE on its id and its topic: %v", err)
	}
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	joinGroup := func() int16 {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.ProtocolType, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = "pipeline", "consumer", 30000, 30000
		req.MemberID = "app-member"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.ErrorCode
	}
	addOffsets := func() int16 {
		t.Helper()
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = "tx-1", pid, epoch, "pipeline"
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.ErrorCode
	}
	txnOffsetCommit := func() int16 {
		t.Helper()
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = "tx-1", pid, epoch, "pipeline"
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = "in"
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, 1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("TxnOffsetCommit answered %+v, want one partition", resp.Topics)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	for name, code := range map[string]int16{"JoinGroup": joinGroup(), "AddOffsetsToTxn": addOffsets(), "TxnOffsetCommit": txnOffsetCommit()} {
		if code != kerr.GroupAuthorizationFailed.Code {
			t.Errorf("%s without READ on the group: %v, want GROUP_AUTHORIZATION_FAILED", name, kerr.ErrorForCode(code))
		}
	}

	weir("acl", "add", "--allow-principal", "User:app", "--operation", "read", "--group", "pipeline")
	if code := addOffsets(); code != 0 {
		t.Fatalf("AddOffsetsToTxn with READ on the group: %v", kerr.ErrorForCode(code))
	}
	if code := txnOffsetCommit(); code != 0 {
		t.Fatalf("TxnOffsetCommit with READ on the group: %v", kerr.ErrorForCode(code))
	}
	if code := joinGroup(); errors.Is(kerr.ErrorForCode(code), kerr.GroupAuthorizationFailed) {
		t.Fatal("JoinGroup with READ on the group: GROUP_AUTHORIZATION_FAILED")
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("committing the transaction with its offsets: %v", err)
	}
}
