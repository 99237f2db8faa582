package broker

// Produce v3-11: every partition's data is exactly one record batch of
// magic 2 (older formats get UNSUPPORTED_FOR_MESSAGE_FORMAT). v5+ returns
// the log start offset; v8+ returns an error message. Idempotent batches
// are checked against the partition's producer state (internal/producer):
// a retry is answered with the original offsets and not written again.
// v10+ answers NOT_LEADER_OR_FOLLOWER with the current leader and its
// endpoint (KIP-951, leader_hints.go).
//
// The appends happen in the connection's reader goroutine, in request
// order. acks=0 sends nothing back; acks=1 answers once the batch is
// written to the log (in the OS, not yet fsynced); acks=all answers once
// the batch is durable (fsynced, which on one node is the high watermark)
// or the request's timeout passes (REQUEST_TIMED_OUT).

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/partition"
	"github.com/weir-broker/weir/internal/producer"
	"github.com/weir-broker/weir/internal/server"
	"github.com/weir-broker/weir/internal/txn"
)

// durableWait is one acks=all partition waiting to become durable.
type durableWait struct {
	topic string
	resp  *kmsg.ProduceResponseTopicPartition
	part  *partition.Partition
	ch    <-chan error
}

func (b *Broker) handleProduce(c *server.Conn, req *kmsg.ProduceRequest) server.Reply {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		for _, t := range req.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.InvalidRequiredAcks.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return func() (kmsg.Response, error) { return resp, nil }
	}
	var waits []durableWait
	var hints hintedBrokers
	failed := false
	txnID := ""
	if req.TransactionID != nil {
		txnID = *req.TransactionID
	}
	nowMs := time.Now().UnixMilli()
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i, t := range req.Topics {
		rt := &resp.Topics[i]
		*rt = kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			if f := b.beforeProducePartition.Load(); f != nil {
				(*f)(t.Topic, p.Partition)
			}
			part, end, err := b.produceOne(txnID, req.Acks, t.Topic, p, rp, nowMs)
			if err != nil {
				failed = true
				rp.ErrorCode = errCode(err)
				if req.Version >= 8 {
					rp.ErrorMessage = errMessage(err)
				}
				if errors.Is(err, kerr.NotLeaderForPartition) {
					b.hintProduceLeader(req.Version, t.Topic, rp, &hints)
				}
				continue
			}
			if req.Acks == -1 {
				waits = append(waits, durableWait{topic: t.Topic, resp: rp, part: part, ch: part.WaitDurable(end)})
			}
		}
	}
	// The answers below take a copy, so the variable the loop filled does
	// not outlive this call.
	answerHints := hints
	switch req.Acks {
	case 0:
		if failed {
			// A producer at acks=0 reads no response; closing the
			// connection is how Kafka tells it something failed.
			return func() (kmsg.Response, error) { return nil, errors.New("acks=0 produce failed") }
		}
		return func() (kmsg.Response, error) { return nil, nil }
	case 1:
		return func() (kmsg.Response, error) { return withProduceHints(resp, answerHints, c.Listener), nil }
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	return func() (kmsg.Response, error) {
		late := answerHints
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		for _, w := range waits {
			select {
			case err := <-w.ch:
				switch {
				case err == nil:
				case errors.Is(err, partition.ErrNotLeader):
					// Deposed while waiting: whether the new leader holds
					// the write is not known here.
					w.resp.ErrorCode = kerr.NotLeaderForPartition.Code
					b.hintProduceLeader(req.Version, w.topic, w.resp, &late)
				default:
					w.resp.ErrorCode = kerr.KafkaStorageError.Code
				}
			case <-timer.C:
				w.resp.ErrorCode = kerr.RequestTimedOut.Code
				if w.part.UnderMinISR() {
					w.resp.ErrorCode = kerr.NotEnoughReplicasAfterAppend.Code
				}
				timer.Reset(0) // the rest have timed out too
			}
		}
		return withProduceHints(resp, late, c.Listener), nil
	}
}

// hintProduceLeader tells a partition's NOT_LEADER_OR_FOLLOWER answer
// where the partition's leader is (KIP-951, v10+), and adds the leader's
// endpoint to hints.
func (b *Broker) hintProduceLeader(version int16, topic string, rp *kmsg.ProduceResponseTopicPartition, hints *hintedBrokers) {
	if version < 10 {
		return
	}
	if leader, epoch, br, ok := b.leaderHint(topic, rp.Partition); ok {
		rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = leader, epoch
		hints.add(br)
	}
}

// withProduceHints adds the endpoints the answer's hints name to resp.
func withProduceHints(resp *kmsg.ProduceResponse, hints hintedBrokers, listener string) *kmsg.ProduceResponse {
	for _, br := range hints {
		if host, port, ok := br.Endpoint(listener); ok {
			resp.Brokers = append(resp.Brokers, kmsg.ProduceResponseBroker{NodeID: br.NodeID, Host: host, Port: port})
		}
	}
	return resp
}

// produceOne validates and appends one partition's batch, filling in the
// response's offsets, and returns the partition and the offset after the
// batch (what acks=all waits for).
func (b *Broker) produceOne(txnID string, acks int16, topic string, p kmsg.ProduceRequestTopicPartition, rp *kmsg.ProduceResponseTopicPartition, nowMs int64) (*partition.Partition, int64, error) {
	part, cfg, kerrc := b.partitionAndSettings(topic, p.Partition)
	if kerrc != nil {
		return nil, 0, kerrc
	}
	if acks == -1 && part.UnderMinISR() {
		// Its high watermark could not pass the write (KIP-966's strict
		// min ISR): refused before it is appended, as Kafka does.
		return nil, 0, kerr.NotEnoughReplicas
	}
	end, err := b.appendBatch(part, txnID, topic, cfg, p, rp, nowMs)
	return part, end, err
}

// appendBatch is produceOne once the partition is found.
func (b *Broker) appendBatch(part *partition.Partition, txnID, topic string, cfg *topicSettings, p kmsg.ProduceRequestTopicPartition, rp *kmsg.ProduceResponseTopicPartition, nowMs int64) (int64, error) {
	if cfg.internal {
		return 0, wrap(kerr.InvalidTopicException, errors.New("clients cannot produce to an internal topic"))
	}
	h, err := batch.Validate(p.Records)
	var guard *partition.TxnGuard
	switch {
	case errors.Is(err, batch.ErrUnsupportedMagic):
		return 0, wrap(kerr.UnsupportedForMessageFormat, err)
	case err != nil:
		return 0, wrap(kerr.CorruptMessage, err)
	case len(p.Records) > cfg.maxMessageBytes:
		return 0, kerr.MessageTooLarge
	case h.Control():
		return 0, wrap(kerr.InvalidRecord, errors.New("clients cannot produce control batches"))
	case h.Idempotent() && h.BaseSequence < 0:
		return 0, wrap(kerr.InvalidRecord, errors.New("idempotent batch without a sequence"))
	case h.Transactional() && !h.Idempotent():
		return 0, wrap(kerr.InvalidRecord, errors.New("transactional batch without a producer id"))
	case h.Transactional() && txnID == "":
		// As Kafka answers: a transactional write is authorised by its
		// transactional id, and there is none.
		return 0, wrap(kerr.TransactionalIDAuthorizationFailed, errors.New("transactional batch in a produce request without a transactional id"))
	case h.Transactional():
		// KIP-890: the guard, taken before the coordinator is asked,
		// refuses the append if the transaction's marker is written to
		// the partition between the coordinator's answer and the append.
		guard = part.BeginVerification(h.ProducerID)
		defer part.EndVerification(guard)
		if err := b.verifyTxnBatch(txnID, part, h); err != nil {
			return 0, err
		}
		b.txns.verified(txn.TopicPartition{Topic: topic, Partition: p.Partition})
	}
	rp.LogAppendTime = -1
	if cfg.logAppendTime {
		batch.SetLogAppendTime(p.Records, nowMs)
		rp.LogAppendTime = nowMs
	}
	var base int64
	var dup *producer.BatchMeta
	if guard != nil {
		base, dup, err = part.AppendVerified(p.Records, h, nowMs, guard)
	} else {
		base, dup, err = part.Append(p.Records, h, nowMs)
	}
	switch {
	case errors.Is(err, batch.ErrCorrupt):
		return 0, wrap(kerr.CorruptMessage, err)
	case errors.Is(err, producer.ErrFenced), errors.Is(err, producer.ErrOutOfOrder), errors.Is(err, producer.ErrNotTransactional),
		errors.Is(err, partition.ErrTxnEnded), errors.Is(err, partition.ErrNotLeader):
		return 0, err
	case err != nil:
		return 0, wrap(kerr.KafkaStorageError, err)
	case dup != nil:
		// A retry of a batch already appended: answer with where it went,
		// once that is durable too.
		rp.BaseOffset = dup.BaseOffset
		rp.LogStartOffset = part.LogStartOffset()
		return dup.LastOffset + 1, nil
	}
	rp.BaseOffset = base
	rp.LogStartOffset = part.LogStartOffset()
	return base + int64(h.LastOffsetDelta) + 1, nil
}
