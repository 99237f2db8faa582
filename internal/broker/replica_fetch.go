package broker

// The leader's side of replication: a Fetch that names a replica (the
// replica id before v15, ReplicaState from v15, KIP-392) is a follower's.
// For each partition the fetch offset is what the follower holds
// fsynced, which partition.UpdateFollower counts towards the high
// watermark and the follower's place in the ISR; a follower whose log
// diverged from this one is told where (KIP-320's DivergingEpoch) instead
// of being sent data. The follower's log start (LogStartOffset, v5+) is
// recorded for the low watermark DeleteRecords waits on. Data is read up
// to the log end, not the high watermark, and a fetch with nothing to
// read waits on the log end (or a move of the log start) for up to its
// max wait, unless a partition's answer is an error or a divergence.
// Clients' fetches never take this path.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/partition"
)

// replicaOf is the replica a fetch is from, -1 for a client's.
func replicaOf(req *kmsg.FetchRequest) int32 {
	if req.Version >= 15 {
		return req.ReplicaState.ID
	}
	return req.ReplicaID
}

// replicaFetch answers a follower's fetch.
func (b *Broker) replicaFetch(ctx context.Context, req *kmsg.FetchRequest, replica int32, bufs *readBuffers) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	brokerEpoch := int64(-1) // the follower's broker epoch, v15+ (KIP-903)
	if req.Version >= 15 {
		brokerEpoch = req.ReplicaState.Epoch
	}
	type target struct {
		part *partition.Partition
		req  *kmsg.FetchRequestTopicPartition
		resp *kmsg.FetchResponseTopicPartition
	}
	var targets []target
	hasError := false
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		ot := &resp.Topics[i]
		*ot = kmsg.NewFetchResponseTopic()
		ot.Topic, ot.TopicID = rt.Topic, rt.TopicID
		name := rt.Topic
		if req.Version >= 13 {
			name, _ = b.topicName(rt.TopicID)
		}
		ot.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			rp, op := &rt.Partitions[j], &ot.Partitions[j]
			*op = kmsg.NewFetchResponseTopicPartition()
			op.Partition = rp.Partition
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
			part, kerrc := b.partition(name, rp.Partition)
			if kerrc != nil {
				op.ErrorCode = kerrc.Code
				hasError = true
				continue
			}
			if code := checkLeaderEpoch(part, rp.CurrentLeaderEpoch); code != 0 {
				op.ErrorCode = code
				hasError = true
				continue
			}
			// What DeleteRecords waits for: the follower's log start
			// (partition.LowWatermark).
			part.SetFollowerLogStart(replica, rp.LogStartOffset)
			targets = append(targets, target{part, rp, op})
		}
	}
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = int(b.settings.Int("replica.fetch.max.bytes"))
	}
	// read counts each follower's offset and reads what it lacks; it
	// returns the bytes read and whether a partition's answer is news that
	// waiting cannot improve (an error, or where the logs diverge).
	read := func() (total int, news bool) {
		bufs.release()
		now := nowMs()
		for _, t := range targets {
			op := t.resp
			op.ErrorCode, op.RecordBatches = 0, nil
			ff, err := t.part.UpdateFollower(replica, brokerEpoch, t.req.FetchOffset, t.req.LastFetchedEpoch, now)
			switch {
			case errors.Is(err, wlog.ErrOffsetOutOfRange):
				op.ErrorCode = kerr.OffsetOutOfRange.Code
				op.LogStartOffset, op.HighWatermark = t.part.LogStartOffset(), t.part.HighWatermark()
				news = true
				continue
			case err != nil:
				op.ErrorCode = errCode(err)
				news = true
				continue
			}
			op.HighWatermark, op.LogStartOffset = ff.HighWatermark, ff.LogStartOffset
			op.LastStableOffset = t.part.LastStableOffset()
			if ff.Diverged {
				op.DivergingEpoch.Epoch, op.DivergingEpoch.EndOffset = ff.DivergingEpoch, ff.DivergingEndOffset
				news = true
				continue
			}
			if t.req.FetchOffset >= ff.LogEndOffset || total >= maxBytes {
				continue
			}
			limit := min(int(t.req.PartitionMaxBytes), maxBytes-total)
			buf := bufs.get()
			data, err := t.part.ReadInto((*buf)[:0], t.req.FetchOffset, ff.LogEndOffset, max(limit, 1))
			if err != nil {
				op.ErrorCode = errCode(wrap(kerr.KafkaStorageError, err))
				news = true
				continue
			}
			bufs.hold(buf, data)
			op.RecordBatches = data
			total += len(data)
		}
		return total, news
	}
	// As in Kafka, an error or a divergence is answered at once: the
	// follower acts on it (truncates, resets, backs off) rather than
	// learn of it a max wait later.
	got, news := read()
	if got > 0 || news || hasError || req.MaxWaitMillis <= 0 || len(targets) == 0 {
		return resp
	}
	// Nothing new: wait for any of the partitions' log ends to move.
	wake := make(chan struct{}, 1)
	for _, t := range targets {
		t.part.WatchEnd(wake)
		defer t.part.UnwatchEnd(wake)
	}
	timer := time.NewTimer(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-wake:
		read()
	case <-timer.C:
		read() // the high watermark may have moved meanwhile
	case <-ctx.Done():
	case <-b.quit:
	}
	return resp
}
