package controller

// AlterPartition (KIP-497): a partition's leader asks the active
// controller to change its ISR, naming the leader epoch and partition
// epoch it acts on. The controller checks the request against its image
// and commits the change as a PartitionRecord with the next partition
// epoch; a leader that lost its leadership, or that acts on a state
// another change replaced, is refused, so an ISR change never undoes a
// newer one. Only ISR changes come this way; leaders are chosen by the
// controller alone (membership.go), and by the completion of a
// reassignment, which the ISR change that brings its last new replica in
// commits (reassign.go).

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// ISRChange is one partition's requested ISR.
type ISRChange struct {
	TopicID        metadata.TopicID
	Topic          string // by name when TopicID is zero (AlterPartition v0-1)
	Partition      int32
	LeaderEpoch    int32
	PartitionEpoch int32
	NewISR         []int32
	// NewISRBrokerEpochs, when set, holds for each member of NewISR the
	// broker epoch the leader saw its fetches carry (-1: not known;
	// AlterPartition v3+, KIP-903).
	NewISRBrokerEpochs []int64
}

// BrokerEpochOf is the broker epoch given for NewISR[i], -1 if none.
func (ch ISRChange) BrokerEpochOf(i int) int64 {
	if i < len(ch.NewISRBrokerEpochs) {
		return ch.NewISRBrokerEpochs[i]
	}
	return -1
}

// ISRResult is the answer for one ISRChange: the error, or the
// partition's state after the change.
type ISRResult struct {
	Err       *kerr.Error
	Partition metadata.Partition
}

// planISRChanges checks each change against im as sent by broker at
// brokerEpoch, and returns the records of those accepted and every
// answer, in order.
func planISRChanges(im *metadata.Image, broker int32, brokerEpoch int64, changes []ISRChange) ([]metadata.Record, []ISRResult) {
	var recs []metadata.Record
	results := make([]ISRResult, len(changes))
	type key struct {
		topic *metadata.Topic
		index int32
	}
	changed := map[key]bool{} // a second change of one partition in one request acts on a replaced state
	for i, ch := range changes {
		var t *metadata.Topic
		if ch.TopicID != (metadata.TopicID{}) {
			t, _ = im.TopicByID(ch.TopicID)
		} else {
			t = im.Topics[ch.Topic]
		}
		if t == nil || ch.Partition < 0 || int(ch.Partition) >= len(t.Partitions) {
			results[i].Err = kerr.UnknownTopicOrPartition
			if ch.TopicID != (metadata.TopicID{}) {
				results[i].Err = kerr.UnknownTopicID
			}
			continue
		}
		cur := t.Partitions[ch.Partition]
		results[i].Partition = cur
		br, registered := im.Brokers[broker]
		switch {
		case !registered || br.Epoch != brokerEpoch:
			results[i].Err = kerr.StaleBrokerEpoch
		case ch.LeaderEpoch < cur.LeaderEpoch:
			results[i].Err = kerr.FencedLeaderEpoch
		case cur.Leader != broker || ch.LeaderEpoch > cur.LeaderEpoch:
			results[i].Err = kerr.NotLeaderForPartition
		case ch.PartitionEpoch != cur.PartitionEpoch || changed[key{t, ch.Partition}]:
			results[i].Err = kerr.InvalidUpdateVersion
		case !slices.Contains(ch.NewISR, broker):
			results[i].Err = kerr.InvalidRequest
		}
		if results[i].Err != nil {
			continue
		}
		for j, r := range ch.NewISR {
			// KIP-903: only a live replica may join, and only on what its
			// current registration fetched (a broker that registered
			// again may have come back without its log); one that is
			// fenced or shutting down may still leave.
			joins := !slices.Contains(cur.ISR, r)
			seenAs := ch.BrokerEpochOf(j)
			if !slices.Contains(cur.Replicas, r) || (joins && (!im.Unfenced(r) || (seenAs >= 0 && im.Brokers[r].Epoch != seenAs))) {
				results[i].Err = kerr.IneligibleReplica
				break
			}
		}
		isr := slices.Clone(ch.NewISR)
		slices.Sort(isr)
		isr = slices.Compact(isr)
		if results[i].Err != nil {
			continue
		}
		if sameMembers(isr, cur.ISR) {
			continue // nothing to change; the answer is the current state
		}
		next := cur
		next.ISR = orderLike(cur.Replicas, isr)
		// KIP-455: the ISR change that brings a reassignment's last
		// adding replica in completes it (reassign.go).
		settleReassignment(&next, im.Unfenced)
		bumpEpochs(cur, &next)
		rec := partitionRecord(t.ID, ch.Partition, cur, next)
		recs = append(recs, metadata.Record{Partition: &rec})
		changed[key{t, ch.Partition}] = true
		results[i].Partition = next
	}
	return recs, results
}

// sameMembers reports whether a and b hold the same ids.
func sameMembers(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// orderLike lists the members of set in the order of replicas, so an ISR
// reads like the assignment it is a part of.
func orderLike(replicas, set []int32) []int32 {
	out := make([]int32, 0, len(set))
	for _, r := range replicas {
		if slices.Contains(set, r) {
			out = append(out, r)
		}
	}
	return out
}

// AlterPartition commits the ISR changes broker asks for, on the active
// controller (NOT_CONTROLLER elsewhere), and answers each.
func (c *Controller) AlterPartition(broker int32, brokerEpoch int64, changes []ISRChange) ([]ISRResult, error) {
	q, ok := c.store.(*quorum)
	if !ok {
		return nil, fail(kerr.InvalidRequest, "a single node has no ISR to change")
	}
	if !q.isLeader.Load() {
		return nil, q.notController()
	}
	var results []ISRResult
	err := c.change(func(im *metadata.Image) ([]metadata.Record, error) {
		var recs []metadata.Record
		recs, results = planISRChanges(im, broker, brokerEpoch, changes)
		return recs, nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}
