package broker

// DeleteRecords v0-2: moves each partition's log start offset up to the
// given offset (-1 meaning the high watermark). An offset above the high
// watermark is OFFSET_OUT_OF_RANGE; the internal topics answer
// INVALID_TOPIC_EXCEPTION, as in Kafka.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	wlog "github.com/weir-broker/weir/internal/log"
)

func (b *Broker) handleDeleteRecords(req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LowWatermark = -1
			part, settings, kerrc := b.partitionAndSettings(t.Topic, p.Partition)
			if kerrc != nil {
				rp.ErrorCode = kerrc.Code
			} else if settings.internal {
				// The coordinators replay their state from these topics'
				// log start: deleting records would lose it.
				rp.ErrorCode = kerr.InvalidTopicException.Code
			} else if low, err := part.DeleteRecordsBefore(p.Offset); errors.Is(err, wlog.ErrOffsetOutOfRange) {
				rp.ErrorCode = kerr.OffsetOutOfRange.Code
			} else if err != nil {
				rp.ErrorCode = kerr.KafkaStorageError.Code
			} else {
				rp.LowWatermark = low
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
