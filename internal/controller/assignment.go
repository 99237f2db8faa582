package controller

// Explicit replica assignments, as CreateTopics and CreatePartitions carry
// them: each partition's replicas are placed exactly as given, the first
// being the preferred leader. As Kafka checks them, every replica must be
// a registered broker, named once, and every partition must have the
// same number of replicas (the topic's replication factor, for partitions
// added to a topic); a partition whose replicas are all fenced cannot
// start, so it is refused too. Failures are INVALID_REPLICA_ASSIGNMENT.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// registered reports whether node id may hold a replica: a registered
// broker in a cluster, this node alone otherwise.
func (c *Controller) registered(im *metadata.Image, id int32) bool {
	if !c.Clustered() {
		return id == c.nodeID
	}
	_, ok := im.Brokers[id]
	return ok
}

// unfenced reports whether node id may lead or be in sync now.
func (c *Controller) unfenced(im *metadata.Image, id int32) bool {
	if !c.Clustered() {
		return id == c.nodeID
	}
	return im.Unfenced(id)
}

// checkAssignment validates the replica lists of partitions [from,
// from+len(assignment)). rf is the replication factor every list must
// have, or 0 when the first list sets it.
func (c *Controller) checkAssignment(im *metadata.Image, assignment [][]int32, from int32, rf int) error {
	for i, replicas := range assignment {
		p := from + int32(i)
		if len(replicas) == 0 {
			return fail(kerr.InvalidReplicaAssignment, "the assignment of partition %d names no replica", p)
		}
		live := false
		for j, id := range replicas {
			if !c.registered(im, id) {
				return fail(kerr.InvalidReplicaAssignment, "the assignment of partition %d names broker %d, which is not registered", p, id)
			}
			if slices.Contains(replicas[:j], id) {
				return fail(kerr.InvalidReplicaAssignment, "the assignment of partition %d names broker %d more than once", p, id)
			}
			live = live || c.unfenced(im, id)
		}
		if rf == 0 {
			rf = len(replicas)
		}
		if len(replicas) != rf {
			return fail(kerr.InvalidReplicaAssignment, "partition %d is assigned %d replicas, the other partitions %d", p, len(replicas), rf)
		}
		if !live {
			return fail(kerr.InvalidReplicaAssignment, "every broker the assignment of partition %d names is fenced", p)
		}
	}
	return nil
}

// assignedRecords places partitions [from, from+len(assignment)) of
// topic id as assignment says: the replicas in the order given, the
// unfenced ones in sync, the first of those the leader (the first
// replica, the preferred leader, when it is up). checkAssignment has
// passed.
func (c *Controller) assignedRecords(im *metadata.Image, id metadata.TopicID, from int32, assignment [][]int32) []metadata.Record {
	recs := make([]metadata.Record, 0, len(assignment))
	for i, replicas := range assignment {
		var isr []int32
		for _, r := range replicas {
			if c.unfenced(im, r) {
				isr = append(isr, r)
			}
		}
		recs = append(recs, metadata.Record{Partition: &metadata.PartitionRecord{
			TopicID: id, Index: from + int32(i), Leader: isr[0], LeaderEpoch: 0,
			Replicas: slices.Clone(replicas), ISR: isr,
		}})
	}
	return recs
}
