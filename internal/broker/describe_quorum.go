package broker

// DescribeQuorum v0-2 (KIP-595; v1 adds the voters' last fetch and last
// caught-up timestamps, KIP-836; v2 adds error messages, directory ids,
// always zero here, and the voters' controller endpoints, KIP-853).
//
// Only topic __cluster_metadata partition 0 exists; any other partition is
// UNKNOWN_TOPIC_OR_PARTITION. Offsets are Raft indexes: the high watermark
// is the commit index, a voter's log end offset the index up to which the
// leader knows its log matches (Raft counts from 1, so an index is the
// exclusive end offset Kafka would give). Only the quorum's leader answers
// with the voters; any other node answers NOT_LEADER_OR_FOLLOWER for the
// partition (as Kafka since KAFKA-13940), naming the leader it knows. A
// node that runs alone answers as a quorum of itself, with its local
// metadata log's end offset. Broker-only nodes, the quorum's learners, are
// its observers.

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/controller"
)

// clusterMetadataTopic is the metadata log's topic name in Kafka.
const clusterMetadataTopic = "__cluster_metadata"

func (b *Broker) handleDescribeQuorum(ctx context.Context, req *kmsg.DescribeQuorumRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeQuorumResponse)
	var (
		st     controller.QuorumStatus
		stErr  error
		loaded bool
	)
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeQuorumResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDescribeQuorumResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LeaderID = -1
			if t.Topic != clusterMetadataTopic || p.Partition != 0 {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			if !loaded {
				st, stErr = b.ctrl.QuorumStatus(ctx)
				loaded = true
			}
			if stErr != nil {
				rp.ErrorCode, rp.ErrorMessage = errCode(stErr), errMessage(stErr)
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			rp.LeaderID, rp.LeaderEpoch = st.LeaderID, st.LeaderEpoch
			if !st.Leading {
				rp.ErrorCode = kerr.NotLeaderForPartition.Code // NOT_LEADER_OR_FOLLOWER since Kafka 2.6
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			rp.HighWatermark = st.HighWatermark
			for _, v := range st.Voters {
				rv := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
				rv.ReplicaID = v.NodeID
				rv.LogEndOffset = v.LogEndOffset
				rv.LastFetchTimestamp, rv.LastCaughtUpTimestamp = v.LastFetchMs, v.LastCaughtUpMs
				rp.CurrentVoters = append(rp.CurrentVoters, rv)
				if host, port, ok := splitPort(v.Addr); ok && req.Version >= 2 {
					n := kmsg.NewDescribeQuorumResponseNode()
					n.NodeID = v.NodeID
					l := kmsg.NewDescribeQuorumResponseNodeListener()
					l.Name, l.Host, l.Port = "CONTROLLER", host, port
					n.Listeners = append(n.Listeners, l)
					resp.Nodes = append(resp.Nodes, n)
				}
			}
			for _, v := range st.Observers {
				rv := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
				rv.ReplicaID = v.NodeID
				rv.LogEndOffset = v.LogEndOffset
				rv.LastFetchTimestamp, rv.LastCaughtUpTimestamp = v.LastFetchMs, v.LastCaughtUpMs
				rp.Observers = append(rp.Observers, rv)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// splitPort splits a host:port whose port fits 16 bits.
func splitPort(addr string) (string, uint16, bool) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, false
	}
	return host, uint16(port), true
}
