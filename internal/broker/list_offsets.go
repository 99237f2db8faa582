package broker

// ListOffsets v1-8: timestamp -2 is the log start offset, -1 the high
// watermark (or the last stable offset under read_committed, v2+), -3 the
// record with the largest timestamp (v7+, KIP-734), -4 the earliest local
// offset (v8+; the log start offset, as nothing is tiered); any other
// timestamp finds the first offset at or after it. Answers for -3 and for
// a timestamp lie below the high watermark, or below the last stable
// offset under read_committed; none is found (-1) otherwise. v4+ returns
// the leader epoch and checks the current one. A leader whose high
// watermark has not reached the start of its leader epoch (new, or
// restarted, before its followers fetch) answers OFFSET_NOT_AVAILABLE for
// everything but the log start (KIP-207).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleListOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, -1
			part, err := b.partition(t.Topic, p.Partition)
			if err != nil {
				rp.ErrorCode = err.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			if code := checkLeaderEpoch(part, p.CurrentLeaderEpoch); code != 0 {
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			rp.LeaderEpoch = part.LeaderEpoch()
			if p.Timestamp != -2 && p.Timestamp != -4 && !part.HighWatermarkEstablished() {
				// A new leader whose followers have not yet fetched: its
				// high watermark may lie below what an earlier leader
				// showed, and a consumer resetting to it would read
				// again what it read (KIP-207). Retriable.
				rp.ErrorCode = kerr.OffsetNotAvailable.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			// What a fetch at this isolation level may read: answers at
			// or past it would point into records the client cannot see.
			visible := part.HighWatermark()
			if req.IsolationLevel == 1 {
				visible = part.LastStableOffset()
			}
			switch p.Timestamp {
			case -2, -4:
				rp.Offset = part.LogStartOffset()
			case -1:
				rp.Offset = visible
			case -3:
				rp.Offset, rp.Timestamp = part.MaxTimestamp()
				if rp.Offset >= visible {
					rp.Offset, rp.Timestamp = -1, -1
				}
			default:
				if p.Timestamp < 0 {
					rp.ErrorCode = kerr.InvalidRequest.Code
					break
				}
				if off, ts, ok := part.OffsetForTimestamp(p.Timestamp); ok && off < visible {
					rp.Offset, rp.Timestamp = off, ts
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
