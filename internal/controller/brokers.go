package controller

// Broker registration (KIP-631) and partition placement over the
// unfenced brokers. A single node registers nothing and leads
// every partition itself, as before.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// Clustered reports whether the metadata is replicated by a quorum (the
// node is part of a cluster) rather than kept in a local log.
func (c *Controller) Clustered() bool {
	_, ok := c.store.(*quorum)
	return ok
}

// RegisterBroker records, through the quorum, that nodeID runs as the
// process incarnation with its Kafka listener at host:port, replacing
// any earlier registration of the node. It may be called on any node:
// a follower's proposal is forwarded to the leader by the Raft library
// itself (MsgProp over the controller transport), which needs no RPC of
// Weir's own; the record fits any image, so it needs no planning on the
// leader. It returns once the registration is applied here, and fails
// (the caller retries) when there is no leader or the proposal was lost,
// or at once when cancel is closed.
func (c *Controller) RegisterBroker(nodeID int32, incarnation, host string, port int32, listeners string, cancel <-chan struct{}) error {
	q, ok := c.store.(*quorum)
	if !ok {
		return fail(kerr.InvalidRequest, "a single node does not register brokers")
	}
	rec := metadata.Record{Broker: &metadata.BrokerRecord{NodeID: nodeID, Incarnation: incarnation, Host: host, Port: port, Listeners: listeners}}
	return q.propose([]metadata.Record{rec}, true, cancel)
}

// checkReplicationFactor refuses, in a cluster, a replication factor the
// unfenced brokers cannot hold, and any above 1 while partitions are not
// replicated.
func (c *Controller) checkReplicationFactor(im *metadata.Image, rf int16) error {
	if n := len(im.UnfencedBrokerIDs()); rf <= 0 || int(rf) > n {
		return fail(kerr.InvalidReplicationFactor, "replication factor %d: %d brokers are registered and unfenced", rf, n)
	}
	return nil
}

// partitionRecords places partitions [from, to) of topic id, rf replicas
// each. A single node holds them all. In a cluster the leaders go
// round-robin over the unfenced brokers in id order (a fenced one may be
// down, KIP-631), starting where the previous placement stopped, so
// topics of few partitions do not all land on the first broker; a
// partition's other replicas are the brokers that follow its leader in
// that order, and all of them start in the ISR. The first replica is the
// preferred leader. Internal topics are placed alike: each coordinator
// shard runs on its partition's leader. Callers hold writeMu (plan runs
// under it), which guards placeNext.
func (c *Controller) partitionRecords(im *metadata.Image, id metadata.TopicID, rf int16, from, to int32) []metadata.Record {
	brokers := im.UnfencedBrokerIDs()
	var recs []metadata.Record
	for i := from; i < to; i++ {
		replicas := []int32{c.nodeID}
		if c.Clustered() && len(brokers) > 0 {
			replicas = replicas[:0]
			for k := range min(int(rf), len(brokers)) {
				replicas = append(replicas, brokers[(c.placeNext+k)%len(brokers)])
			}
			c.placeNext++
		}
		recs = append(recs, metadata.Record{Partition: &metadata.PartitionRecord{
			TopicID: id, Index: i, Leader: replicas[0], LeaderEpoch: 0,
			Replicas: replicas, ISR: slices.Clone(replicas),
		}})
	}
	return recs
}
