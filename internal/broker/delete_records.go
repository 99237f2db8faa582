package broker

// DeleteRecords v0-2 (KIP-107): moves each partition's log start offset up
// to the given offset (-1 meaning the high watermark). An offset above the
// high watermark is OFFSET_OUT_OF_RANGE; the internal topics answer
// INVALID_TOPIC_EXCEPTION, as in Kafka. The versions differ only in
// encoding.
//
// The leader moves its own log start at once, then answers only when the
// partition's low watermark (the smallest log start of the leader and
// the followers on live brokers, partition.LowWatermark) has reached the
// offset, or with REQUEST_TIMED_OUT after the request's TimeoutMillis:
// a record is reported deleted only once no replica that could be
// elected still serves it. LowWatermark in the answer is that low
// watermark. Without followers it is the leader's log start, at once.

import (
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
	"github.com/weir-broker/weir/internal/server"
)

// lowWatermarkRecheck is how often a waiting DeleteRecords looks again
// without a follower's fetch waking it: a follower whose broker is fenced
// meanwhile stops counting, which no fetch announces.
const lowWatermarkRecheck = 200 * time.Millisecond

// deleteWait is one partition waiting for its low watermark.
type deleteWait struct {
	topic    string
	part     *partition.Partition
	required int64
	resp     *kmsg.DeleteRecordsResponseTopicPartition
}

func (b *Broker) handleDeleteRecords(req *kmsg.DeleteRecordsRequest) server.Reply {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	var waits []deleteWait
	resp.Topics = make([]kmsg.DeleteRecordsResponseTopic, len(req.Topics))
	for i, t := range req.Topics {
		rt := &resp.Topics[i]
		*rt = kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.DeleteRecordsResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LowWatermark = -1
			part, settings, kerrc := b.partitionAndSettings(t.Topic, p.Partition)
			if kerrc != nil {
				rp.ErrorCode = kerrc.Code
			} else if settings.internal {
				// The coordinators replay their state from these topics'
				// log start: deleting records would lose it.
				rp.ErrorCode = kerr.InvalidTopicException.Code
			} else if !part.IsLeader() {
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
			} else if start, err := part.DeleteRecordsBefore(p.Offset); errors.Is(err, wlog.ErrOffsetOutOfRange) {
				rp.ErrorCode = kerr.OffsetOutOfRange.Code
			} else if err != nil {
				rp.ErrorCode = kerr.KafkaStorageError.Code
			} else {
				required := p.Offset
				if required < 0 { // -1: the high watermark, where the start now is
					required = start
				}
				waits = append(waits, deleteWait{topic: t.Topic, part: part, required: required, resp: rp})
			}
		}
	}
	timeout := time.Duration(max(req.TimeoutMillis, 0)) * time.Millisecond
	return func() (kmsg.Response, error) {
		b.awaitLowWatermarks(waits, timeout)
		return resp, nil
	}
}

// awaitLowWatermarks fills in each wait's answer once its partition's low
// watermark reaches the offset required, or REQUEST_TIMED_OUT after
// timeout. No lock is held while it waits: follower fetches that report a
// new log start wake it (partition.WatchLowWatermark).
func (b *Broker) awaitLowWatermarks(waits []deleteWait, timeout time.Duration) {
	if len(waits) == 0 {
		return
	}
	wake := make(chan struct{}, 1)
	for _, w := range waits {
		w.part.WatchLowWatermark(wake)
		defer w.part.UnwatchLowWatermark(wake)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(lowWatermarkRecheck)
	defer recheck.Stop()
	pending := waits
	for {
		pending = slices.DeleteFunc(pending, b.lowWatermarkReached)
		if len(pending) == 0 {
			return
		}
		select {
		case <-wake:
		case <-recheck.C:
		case <-deadline.C:
			timedOut(pending)
			return
		case <-b.quit:
			timedOut(pending)
			return
		}
	}
}

// timedOut answers the partitions whose low watermark did not get there.
func timedOut(pending []deleteWait) {
	for _, w := range pending {
		w.resp.ErrorCode = kerr.RequestTimedOut.Code
	}
}

// lowWatermarkReached reports whether w is answered: its low watermark
// reached the offset required (or the replica stopped leading), with the
// answer filled in. Otherwise the answer holds the low watermark so far.
func (b *Broker) lowWatermarkReached(w deleteWait) bool {
	low, err := w.part.LowWatermark(b.electableReplicas(w.topic, w.part.Index))
	if err != nil {
		w.resp.ErrorCode, w.resp.LowWatermark = kerr.NotLeaderForPartition.Code, -1
		return true
	}
	w.resp.LowWatermark = low
	return low >= w.required
}

// electableReplicas lists the partition's assigned replicas on live
// (registered, unfenced) brokers: those whose log start the low watermark
// waits for. Alone, without an image naming the partition, it is none.
func (b *Broker) electableReplicas(topic string, index int32) []int32 {
	var ids []int32
	b.ctrl.View(func(im *metadata.Image) {
		t := im.Topics[topic]
		if t == nil || index < 0 || int(index) >= len(t.Partitions) {
			return
		}
		for _, id := range t.Partitions[index].Replicas {
			if im.Unfenced(id) {
				ids = append(ids, id)
			}
		}
	})
	return ids
}
