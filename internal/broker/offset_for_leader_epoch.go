package broker

// OffsetForLeaderEpoch v0-4 (KIP-101, KIP-320): for each partition, the
// largest leader epoch at or below the one asked that wrote to the log
// and the offset where its data ends (v1+ returns the epoch). A consumer
// that saw records of an epoch asks where that epoch ends on the current
// leader; an end below its position means the log was truncated under
// it. v2+ checks the asker's current leader epoch (FENCED_LEADER_EPOCH,
// UNKNOWN_LEADER_EPOCH); v3+ names the asking replica (-1 for consumers).
// A partition led elsewhere is NOT_LEADER_OR_FOLLOWER.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleOffsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition, rp.LeaderEpoch, rp.EndOffset = p.Partition, -1, -1
			part, kerrc := b.partition(t.Topic, p.Partition)
			switch {
			case kerrc != nil:
				rp.ErrorCode = kerrc.Code
			case req.Version >= 2 && checkLeaderEpoch(part, p.CurrentLeaderEpoch) != 0:
				rp.ErrorCode = checkLeaderEpoch(part, p.CurrentLeaderEpoch)
			default:
				rp.LeaderEpoch, rp.EndOffset = part.EndOffsetForEpoch(p.LeaderEpoch)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
