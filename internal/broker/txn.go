package broker

// Transactions (KIP-98, with the KIP-890 part 1 defense):
// InitProducerId v0-4 with a transactional id, AddPartitionsToTxn v0-3,
// EndTxn v0-3, WriteTxnMarkers v0-1, DescribeTransactions v0 and
// ListTransactions v0-1 (KIP-664). The coordinator is internal/txn,
// driven by txn_coordinator.go. AddOffsetsToTxn v0-3 adds a group to the
// transaction; TxnOffsetCommit v0-3 is served by the group coordinator
// once the coordinator confirms the group is in the producer's open
// transaction.
//
// That confirmation, and the one for each transactional produce, is
// taken under a verification guard of the partition written to
// (internal/partition/verify.go), so a marker written between the
// confirmation and the append refuses the write (INVALID_TXN_STATE).
// While the previous transaction of an id is being completed,
// AddPartitionsToTxn, AddOffsetsToTxn and EndTxn wait for it for up to a
// second, then answer CONCURRENT_TRANSACTIONS; requests for other ids do
// not wait for it. The checks of produces and TxnOffsetCommit read the
// coordinator's published view and take no coordinator lock.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/server"
	"github.com/weir-broker/weir/internal/txn"
)

func (b *Broker) handleInitTransactionalProducerID(req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) kmsg.Response {
	if *req.TransactionalID == "" {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	d, err := b.txns.coordinator(true)
	if err != nil {
		b.logger.Error("transaction coordinator", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	pid, epoch := int64(-1), int16(-1)
	if req.Version >= 3 {
		pid, epoch = req.ProducerID, req.ProducerEpoch
	}
	r := d.do(txn.InitProducerID{TransactionalID: *req.TransactionalID, TimeoutMs: req.TransactionTimeoutMillis, ProducerID: pid, ProducerEpoch: epoch})
	if r.Err != nil {
		resp.ErrorCode = errCode(r.Err)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.ProducerEpoch
	return resp
}

// coordinatorFor returns the loaded coordinator or the error code clients
// retry on.
func (b *Broker) coordinatorFor() (*txnDriver, int16) {
	d, err := b.txns.coordinator(false)
	switch {
	case err != nil:
		b.logger.Error("transaction coordinator", "err", err)
		return nil, kerr.CoordinatorNotAvailable.Code
	case d == nil:
		return nil, kerr.InvalidProducerIDMapping.Code
	}
	return d, 0
}

func (b *Broker) handleAddPartitionsToTxn(req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	var parts []txn.TopicPartition
	unknown := false
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if !b.partitionExists(t.Topic, p) {
				unknown = true
			}
			parts = append(parts, txn.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	code := int16(0)
	if unknown {
		code = kerr.UnknownTopicOrPartition.Code
	} else if c, cc := b.coordinatorFor(); cc != 0 {
		code = cc
	} else {
		code = errCode(c.do(txn.AddPartitions{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Partitions: parts}).Err)
	}
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, code
			if unknown {
				// Kafka names the missing partitions and marks the rest as
				// not attempted.
				rp.ErrorCode = kerr.OperationNotAttempted.Code
				if !b.partitionExists(t.Topic, p) {
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// handleAddOffsetsToTxn adds a group to the transaction: its offsets,
// sent with TxnOffsetCommit, commit or abort with it.
func (b *Broker) handleAddOffsetsToTxn(req *kmsg.AddOffsetsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	c, code := b.coordinatorFor()
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	if _, err := b.groups.shardFor(req.Group, true); err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	r := c.do(txn.AddPartitions{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Groups: []string{req.Group}})
	resp.ErrorCode = errCode(r.Err)
	return resp
}

// handleTxnOffsetCommit confirms with the coordinator that the group is
// in the producer's open transaction, then has the group's shard write
// the offsets. As for produce (KIP-890), a guard taken on the group's
// partition before the coordinator is asked refuses the write if the
// transaction's marker reaches that partition in between.
func (b *Broker) handleTxnOffsetCommit(ctx context.Context, c *server.Conn, req *kmsg.TxnOffsetCommitRequest) server.Reply {
	tc, code := b.coordinatorFor()
	var s *groupShard
	if code == 0 {
		var err error
		if s, err = b.groups.shardFor(req.Group, true); err != nil || s == nil {
			code = kerr.CoordinatorNotAvailable.Code
		}
	}
	if code != 0 {
		resp := txnOffsetCommitError(req, code)
		return func() (kmsg.Response, error) { return resp, nil }
	}
	guard := s.part.BeginVerification(req.ProducerID)
	defer s.part.EndVerification(guard)
	if code := errCode(tc.view().GroupInTransaction(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)); code != 0 {
		resp := txnOffsetCommitError(req, code)
		return func() (kmsg.Response, error) { return resp, nil }
	}
	b.txns.verified(txn.TopicPartition{Topic: s.part.Topic, Partition: s.part.Index})
	return awaitResponse(ctx, s.stepVerified(group.Input{ClientID: c.ClientID, ClientHost: clientHost(c), Req: req}, guard))
}

// txnOffsetCommitError answers every partition of req with code.
func txnOffsetCommitError(req *kmsg.TxnOffsetCommitRequest, code int16) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (b *Broker) handleEndTxn(req *kmsg.EndTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	c, code := b.coordinatorFor()
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	resp.ErrorCode = errCode(c.do(txn.End{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Commit: req.Commit}).Err)
	return resp
}

// handleWriteTxnMarkers writes markers as a coordinator asks. On one node
// the coordinator writes its markers directly; this is the same path for
// a tool or, later, another node.
func (b *Broker) handleWriteTxnMarkers(req *kmsg.WriteTxnMarkersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = p
				part, kerrc := b.partition(t.Topic, p)
				if kerrc != nil {
					rp.ErrorCode = kerrc.Code
				} else if end, err := part.AppendMarker(m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch); err != nil {
					rp.ErrorCode = errCode(err)
				} else if err := <-part.WaitDurable(end); err != nil {
					rp.ErrorCode = kerr.KafkaStorageError.Code
				} else if t.Topic == group.OffsetsTopic {
					// The group shard applies the outcome as it does for
					// the coordinator's own markers, so the live state is
					// what a replay of the partition gives.
					if shards, _ := b.groups.load(false); int(p) < len(shards) && p >= 0 {
						shards[p].completeTxn(m.ProducerID, m.Committed)
					}
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp
}

func (b *Broker) handleDescribeTransactions(req *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	c, err := b.txns.coordinator(false)
	var known map[string]txn.Meta
	if err == nil && c != nil {
		known = c.describe(req.TransactionalIDs)
	}
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		m, ok := known[id]
		switch {
		case err != nil:
			st.ErrorCode = kerr.CoordinatorNotAvailable.Code
		case !ok:
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
		default:
			st.State = string(m.Status)
			st.TimeoutMillis = m.TimeoutMs
			st.StartTimestamp = m.StartMs
			st.ProducerID, st.ProducerEpoch = m.ProducerID, m.ProducerEpoch
			byTopic := map[string]int{}
			for _, tp := range m.Partitions {
				i, seen := byTopic[tp.Topic]
				if !seen {
					i = len(st.Topics)
					byTopic[tp.Topic] = i
					t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
					t.Topic = tp.Topic
					st.Topics = append(st.Topics, t)
				}
				st.Topics[i].Partitions = append(st.Topics[i].Partitions, tp.Partition)
			}
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

func (b *Broker) handleListTransactions(req *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	c, err := b.txns.coordinator(false)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	if c == nil {
		return resp
	}
	states := wanted(req.StateFilters)
	if len(req.StateFilters) == 0 {
		states = wanted(nil)
	}
	pids := map[int64]bool{}
	for _, p := range req.ProducerIDFilters {
		pids[p] = true
	}
	now := time.Now().UnixMilli()
	for _, m := range c.list() {
		if !states(string(m.Status)) || (len(pids) > 0 && !pids[m.ProducerID]) {
			continue
		}
		if req.DurationFilterMillis > 0 && (m.Status != txn.Ongoing || now-m.StartMs < req.DurationFilterMillis) {
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = m.TransactionalID, m.ProducerID, string(m.Status)
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}
