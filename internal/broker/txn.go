package broker

// Transactions (KIP-98, with the KIP-890 part 1 defense):
// InitProducerId v0-4 with a transactional id, AddPartitionsToTxn v0-4
// (v4 is what brokers send: several transactions, VerifyOnly),
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
	"errors"
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
	s, err := b.txns.get(*req.TransactionalID, true)
	if err != nil {
		b.logCoordinatorError("transaction coordinator", err)
		resp.ErrorCode = errCode(err)
		return resp
	}
	pid, epoch := int64(-1), int16(-1)
	if req.Version >= 3 {
		pid, epoch = req.ProducerID, req.ProducerEpoch
	}
	r := s.do(txn.InitProducerID{TransactionalID: *req.TransactionalID, TimeoutMs: req.TransactionTimeoutMillis, ProducerID: pid, ProducerEpoch: epoch})
	if r.Err != nil {
		resp.ErrorCode = errCode(r.Err)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.ProducerEpoch
	return resp
}

// logCoordinatorError logs a coordinator that cannot serve for a reason
// other than leadership (which clients follow by themselves).
func (b *Broker) logCoordinatorError(what string, err error) {
	if !errors.Is(err, kerr.NotCoordinator) && !errors.Is(err, kerr.CoordinatorLoadInProgress) {
		b.logger.Error(what+" unavailable", "err", err)
	}
}

// coordinatorFor returns the loaded shard coordinating transactional id
// id, or the error code clients act on: NOT_COORDINATOR (look it up
// again), COORDINATOR_LOAD_IN_PROGRESS (retry), INVALID_PRODUCER_ID_MAPPING
// before any transactional state exists.
func (b *Broker) coordinatorFor(id string) (*txnShard, int16) {
	s, err := b.txns.get(id, false)
	switch {
	case errors.Is(err, errNoState):
		return nil, kerr.InvalidProducerIDMapping.Code
	case err != nil:
		b.logCoordinatorError("transaction coordinator", err)
		return nil, errCode(err)
	}
	return s, 0
}

// handleAddPartitionsToTxn serves v0-3, a client adding partitions to its
// transaction, and v4, the batched form brokers send: with VerifyOnly it
// only answers whether each partition is already in the transaction (the
// KIP-890 check of a partition leader that does not coordinate the id).
func (b *Broker) handleAddPartitionsToTxn(req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		t := kmsg.NewAddPartitionsToTxnRequestTransaction()
		t.TransactionalID, t.ProducerID, t.ProducerEpoch = req.TransactionalID, req.ProducerID, req.ProducerEpoch
		for _, rt := range req.Topics {
			tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
			tt.Topic, tt.Partitions = rt.Topic, rt.Partitions
			t.Topics = append(t.Topics, tt)
		}
		rt := b.addPartitionsToTxn(t)
		resp.Topics = make([]kmsg.AddPartitionsToTxnResponseTopic, len(rt.Topics))
		for i, t := range rt.Topics {
			resp.Topics[i] = kmsg.AddPartitionsToTxnResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p.Partition, ErrorCode: p.ErrorCode})
			}
		}
		return resp
	}
	for _, t := range req.Transactions {
		resp.Transactions = append(resp.Transactions, b.addPartitionsToTxn(t))
	}
	return resp
}

// addPartitionsToTxn serves one transaction of AddPartitionsToTxn.
func (b *Broker) addPartitionsToTxn(t kmsg.AddPartitionsToTxnRequestTransaction) kmsg.AddPartitionsToTxnResponseTransaction {
	rt := kmsg.NewAddPartitionsToTxnResponseTransaction()
	rt.TransactionalID = t.TransactionalID
	var parts []txn.TopicPartition
	unknown, internal := false, false
	for _, tt := range t.Topics {
		if tt.Topic == group.OffsetsTopic || tt.Topic == TxnStateTopic {
			// Clients cannot write to internal topics; a group's
			// offsets join a transaction through AddOffsetsToTxn.
			internal = internal || !t.VerifyOnly || tt.Topic == TxnStateTopic
		}
		for _, p := range tt.Partitions {
			if !b.partitionExists(tt.Topic, p) {
				unknown = true
			}
			parts = append(parts, txn.TopicPartition{Topic: tt.Topic, Partition: p})
		}
	}
	var codes []int16 // per partition, in request order
	s, code := b.coordinatorFor(t.TransactionalID)
	switch {
	case internal:
		code = kerr.InvalidTopicException.Code
	case unknown:
	case code != 0:
	case t.VerifyOnly:
		v := s.view()
		for _, tp := range parts {
			var err error
			if tp.Topic == group.OffsetsTopic {
				n := b.partitionCount(group.OffsetsTopic)
				err = v.GroupsInTransaction(t.TransactionalID, t.ProducerID, t.ProducerEpoch, func(g string) bool { return group.PartitionFor(g, n) == tp.Partition })
			} else {
				err = v.InTransaction(t.ProducerID, t.ProducerEpoch, tp)
			}
			codes = append(codes, errCode(err))
		}
	default:
		code = errCode(s.do(txn.AddPartitions{TransactionalID: t.TransactionalID, ProducerID: t.ProducerID, ProducerEpoch: t.ProducerEpoch, Partitions: parts}).Err)
	}
	i := 0
	for _, tt := range t.Topics {
		rtt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
		rtt.Topic = tt.Topic
		for _, p := range tt.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
			rp.Partition, rp.ErrorCode = p, code
			switch {
			case internal:
			case unknown:
				// Kafka names the missing partitions and marks the rest as
				// not attempted.
				rp.ErrorCode = kerr.OperationNotAttempted.Code
				if !b.partitionExists(tt.Topic, p) {
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
			case codes != nil:
				rp.ErrorCode = codes[i]
			}
			i++
			rtt.Partitions = append(rtt.Partitions, rp)
		}
		rt.Topics = append(rt.Topics, rtt)
	}
	return rt
}

// handleAddOffsetsToTxn adds a group to the transaction: its offsets,
// sent with TxnOffsetCommit, commit or abort with it.
func (b *Broker) handleAddOffsetsToTxn(req *kmsg.AddOffsetsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	c, code := b.coordinatorFor(req.TransactionalID)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	// The group's offsets go to __consumer_offsets, wherever its
	// coordinator runs: the topic must exist for the markers.
	if _, err := b.ensureInternalTopic(b.groups.set.topic, true); err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	r := c.do(txn.AddPartitions{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Groups: []string{req.Group}})
	resp.ErrorCode = errCode(r.Err)
	return resp
}

// handleTxnOffsetCommit confirms with the transaction coordinator that
// the group is in the producer's open transaction, then has the group's
// shard write the offsets. As for produce (KIP-890), a guard taken on the
// group's partition before the coordinator is asked refuses the write if
// the transaction's marker reaches that partition in between. When
// another node coordinates the transactional id, it is asked as a
// partition leader asks (verifyTxnOffsets).
func (b *Broker) handleTxnOffsetCommit(ctx context.Context, c *server.Conn, req *kmsg.TxnOffsetCommitRequest) server.Reply {
	s, err := b.groups.shardFor(req.Group, true)
	if err == nil && s == nil {
		err = kerr.CoordinatorNotAvailable
	}
	if err != nil {
		b.logCoordinatorError("group coordinator", err)
		resp := txnOffsetCommitError(req, errCode(err))
		return func() (kmsg.Response, error) { return resp, nil }
	}
	guard := s.part.BeginVerification(req.ProducerID)
	defer s.part.EndVerification(guard)
	if code := errCode(b.verifyTxnOffsets(req, s)); code != 0 {
		resp := txnOffsetCommitError(req, code)
		return func() (kmsg.Response, error) { return resp, nil }
	}
	b.txns.verified(txn.TopicPartition{Topic: s.part.Topic, Partition: s.part.Index})
	return awaitResponse(ctx, s.stepVerified(group.Input{ClientID: c.ClientID, ClientHost: clientHost(c), Req: req}, guard))
}

// verifyTxnOffsets is the KIP-890 check of a TxnOffsetCommit, made on the
// group's shard s: by this node's transaction shard when it coordinates
// the transactional id, else by the coordinator, asked about the group's
// __consumer_offsets partition.
func (b *Broker) verifyTxnOffsets(req *kmsg.TxnOffsetCommitRequest, s *groupShard) error {
	tc, err := b.txns.get(req.TransactionalID, false)
	switch {
	case err == nil:
		return tc.view().GroupInTransaction(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
	case errors.Is(err, errNoState) && b.ctrl.Clustered():
		// This node may lag behind the quorum: the client retries.
		return wrap(kerr.CoordinatorLoadInProgress, errors.New("this broker does not know the transaction coordinators yet"))
	case errors.Is(err, errNoState):
		return kerr.InvalidProducerIDMapping
	case !b.ctrl.Clustered() || !errors.Is(err, kerr.NotCoordinator):
		return err
	}
	err = b.verifyRemote(req.TransactionalID, req.ProducerID, req.ProducerEpoch, txn.TopicPartition{Topic: s.part.Topic, Partition: s.part.Index})
	if errors.Is(err, kerr.NotEnoughReplicas) {
		// TxnOffsetCommit has no NOT_ENOUGH_REPLICAS: clients retry this.
		return wrap(kerr.CoordinatorLoadInProgress, err)
	}
	return err
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
	c, code := b.coordinatorFor(req.TransactionalID)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	resp.ErrorCode = errCode(c.do(txn.End{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Commit: req.Commit}).Err)
	return resp
}

// handleWriteTxnMarkers writes markers as a coordinator asks: another
// node's coordinator for the partitions this node leads (interbroker.go),
// or a tool. A coordinator writes the markers of partitions it leads
// itself.
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
				if t.Topic == TxnStateTopic {
					// No transaction writes there: only its coordinator.
					rp.ErrorCode = kerr.InvalidTopicException.Code
				} else if kerrc != nil {
					rp.ErrorCode = kerrc.Code
				} else if end, applied, err := part.AppendTxnMarker(m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch, markerSeq(&m)); err != nil {
					rp.ErrorCode = errCode(err)
				} else if err := <-part.WaitDurable(end); err != nil {
					rp.ErrorCode = kerr.KafkaStorageError.Code
				} else if t.Topic == group.OffsetsTopic && applied {
					// The group shard applies the outcome as it does for
					// the coordinator's own markers, so the live state is
					// what a replay of the partition gives.
					b.groups.completeTxn(p, m.ProducerID, m.Committed)
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
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		s, err := b.txns.get(id, false)
		var m txn.Meta
		var ok bool
		if err == nil {
			m, ok = s.describe([]string{id})[id]
		}
		switch {
		case errors.Is(err, errNoState):
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
		case err != nil:
			st.ErrorCode = errCode(err)
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

// handleListTransactions lists the transactional ids of the shards this
// node runs (clients ask every broker, as Kafka's are asked).
func (b *Broker) handleListTransactions(req *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	states := wanted(req.StateFilters)
	if len(req.StateFilters) == 0 {
		states = wanted(nil)
	}
	pids := map[int64]bool{}
	for _, p := range req.ProducerIDFilters {
		pids[p] = true
	}
	now := time.Now().UnixMilli()
	for _, s := range b.txns.set.loaded() {
		for _, m := range s.list() {
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
	}
	return resp
}
