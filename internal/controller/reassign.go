package controller

// Partition reassignment (KIP-455): replicas move between brokers while
// the partition keeps serving. A reassignment to a target list grows the
// assignment first: the replicas become the target followed by the
// current replicas not in it, those of the target that are new are
// "adding" and those of the current ones not in the target "removing".
// The brokers act on the image: an adding replica becomes a follower and
// copies the leader's log from its start, and the leader lets it into
// the ISR once it has caught up (AlterPartition). The move completes in
// the same change as the ISR change that brings the last adding replica
// in: the replicas become the target, the ISR keeps only target members,
// and a leader being removed hands over to an in-sync target member.
// Brokers no longer listed stop following and delete their copy.
//
// A new reassignment of a partition being moved replaces the one in
// progress, planned from the assignment the first started from; a
// cancellation (null replicas) returns to that assignment. Both refuse a
// change that would leave no in-sync replica: Kafka too refuses a revert
// that needs an unclean election.
//
// planReassignment and settleReassignment are pure functions of a
// partition's state; the controller methods plan them against the image
// and commit the records like any other change.

import (
	"fmt"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// Reassignment is one partition's requested reassignment.
type Reassignment struct {
	Topic     string
	Partition int32
	// Replicas is the target assignment, its first member the preferred
	// leader; nil cancels the reassignment in progress.
	Replicas []int32
}

// ReassignResult is the answer for one Reassignment: nil Err, or the
// error and a message saying why.
type ReassignResult struct {
	Err *kerr.Error
	Msg string
}

// PartitionReassignment is a reassignment in progress as
// ListPartitionReassignments reports it.
type PartitionReassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
	Adding    []int32
	Removing  []int32
}

// reassignError is a refused reassignment of one partition.
type reassignError struct {
	code *kerr.Error
	msg  string
}

func refuse(code *kerr.Error, format string, args ...any) *reassignError {
	return &reassignError{code: code, msg: fmt.Sprintf(format, args...)}
}

// planReassignment returns the state partition p takes when asked to
// move to target (nil: cancel), and whether that differs from p. known
// says whether a broker id may hold a replica (a registered broker),
// mayLead whether it may be made leader now (an unfenced one). The
// state's leader epoch is one past p's when the leader changes or a
// replica leaves, so the replicas that stay start afresh with the
// leader and a removed one's fetches are fenced.
func planReassignment(p metadata.Partition, target []int32, known, mayLead func(int32) bool) (metadata.Partition, bool, *reassignError) {
	orig := without(p.Replicas, p.AddingReplicas)
	next := p
	next.AddingReplicas, next.RemovingReplicas = nil, nil
	if target == nil {
		if !p.Reassigning() {
			return p, false, refuse(kerr.NoReassignmentInProgress, "no reassignment of the partition is in progress")
		}
		next.Replicas = orig
	} else {
		if len(target) == 0 {
			return p, false, refuse(kerr.InvalidReplicaAssignment, "the replica list is empty")
		}
		for i, id := range target {
			switch {
			case slices.Contains(target[:i], id):
				return p, false, refuse(kerr.InvalidReplicaAssignment, "broker %d is listed twice in %v", id, target)
			case id < 0 || !known(id):
				return p, false, refuse(kerr.InvalidReplicaAssignment, "broker %d in %v is not a registered broker", id, target)
			}
		}
		next.Replicas = append(slices.Clone(target), without(orig, target)...)
		next.AddingReplicas = without(target, orig)
		next.RemovingReplicas = without(orig, target)
	}
	next.ISR = orderLike(next.Replicas, p.ISR)
	if len(next.ISR) == 0 {
		if target == nil {
			return p, false, refuse(kerr.InvalidReplicaAssignment, "cannot cancel: no replica of the original assignment %v is in sync (ISR %v), and reverting would need an unclean election", orig, p.ISR)
		}
		return p, false, refuse(kerr.InvalidReplicaAssignment, "no member of the ISR %v would be a replica of %v", p.ISR, next.Replicas)
	}
	if next.Leader >= 0 && !slices.Contains(next.ISR, next.Leader) {
		// The leader was a replica the replaced move was adding.
		if next.Leader = firstLeader(next.Replicas, next.ISR, mayLead); next.Leader < 0 {
			return p, false, refuse(kerr.InvalidReplicaAssignment, "no in-sync replica of %v may lead now", next.Replicas)
		}
	}
	settleReassignment(&next, mayLead)
	bumpEpochs(p, &next)
	return next, !samePartition(p, next), nil
}

// settleReassignment completes the reassignment in progress of p when
// every adding replica is in its ISR, and reports whether it did: the
// replicas become the target, the ISR its in-sync members, and a leader
// being removed gives way to the first target member in sync that may
// lead (a partition without a leader keeps none: electing one is
// membership's business). A move that would leave no in-sync target
// member, or no leader where one must change, waits for a later ISR
// change. The caller raises the epochs (bumpEpochs).
func settleReassignment(p *metadata.Partition, mayLead func(int32) bool) bool {
	if !p.Reassigning() {
		return false
	}
	for _, id := range p.AddingReplicas {
		if !slices.Contains(p.ISR, id) {
			return false
		}
	}
	target := without(p.Replicas, p.RemovingReplicas)
	isr := orderLike(target, p.ISR)
	if len(isr) == 0 {
		return false
	}
	leader := p.Leader
	if leader >= 0 && !slices.Contains(isr, leader) {
		if leader = firstLeader(target, isr, mayLead); leader < 0 {
			return false
		}
	}
	p.Replicas, p.ISR, p.Leader = target, isr, leader
	p.AddingReplicas, p.RemovingReplicas = nil, nil
	return true
}

// bumpEpochs sets next's leader epoch one past cur's when next has
// another leader or fewer replicas, and its partition epoch one past
// cur's.
func bumpEpochs(cur metadata.Partition, next *metadata.Partition) {
	next.LeaderEpoch = cur.LeaderEpoch
	if next.Leader != cur.Leader || len(without(cur.Replicas, next.Replicas)) > 0 {
		next.LeaderEpoch = cur.LeaderEpoch + 1
	}
	next.PartitionEpoch = cur.PartitionEpoch + 1
}

// partitionRecord is the record that turns partition index of topic into
// next; it states the assignment when that changed.
func partitionRecord(topic metadata.TopicID, index int32, cur, next metadata.Partition) metadata.PartitionRecord {
	rec := metadata.PartitionRecord{
		TopicID: topic, Index: index, Leader: next.Leader, LeaderEpoch: next.LeaderEpoch,
		Replicas: next.Replicas, ISR: next.ISR, PartitionEpoch: next.PartitionEpoch,
	}
	if !slices.Equal(cur.Replicas, next.Replicas) || !slices.Equal(cur.AddingReplicas, next.AddingReplicas) ||
		!slices.Equal(cur.RemovingReplicas, next.RemovingReplicas) {
		rec.AddingReplicas, rec.RemovingReplicas = metadata.IDs(next.AddingReplicas), metadata.IDs(next.RemovingReplicas)
	}
	return rec
}

// firstLeader is the first of order in isr that may lead, or -1.
func firstLeader(order, isr []int32, mayLead func(int32) bool) int32 {
	for _, id := range order {
		if slices.Contains(isr, id) && mayLead(id) {
			return id
		}
	}
	return -1
}

// without lists the members of a not in b, in a's order.
func without(a, b []int32) []int32 {
	var out []int32
	for _, id := range a {
		if !slices.Contains(b, id) {
			out = append(out, id)
		}
	}
	return out
}

// samePartition reports whether a and b are the same state, epochs
// aside.
func samePartition(a, b metadata.Partition) bool {
	return a.Leader == b.Leader && slices.Equal(a.Replicas, b.Replicas) && sameMembers(a.ISR, b.ISR) &&
		slices.Equal(a.AddingReplicas, b.AddingReplicas) && slices.Equal(a.RemovingReplicas, b.RemovingReplicas)
}

// planReassignments plans each request against im and returns the
// records of those that change a partition and every answer, in order.
// A partition named twice in one request is refused the second time.
func planReassignments(im *metadata.Image, reqs []Reassignment, known, mayLead func(int32) bool) ([]metadata.Record, []ReassignResult) {
	var recs []metadata.Record
	results := make([]ReassignResult, len(reqs))
	type key struct {
		topic string
		index int32
	}
	seen := map[key]bool{}
	for i, r := range reqs {
		t := im.Topics[r.Topic]
		switch {
		case t == nil || r.Partition < 0 || int(r.Partition) >= len(t.Partitions):
			results[i] = ReassignResult{kerr.UnknownTopicOrPartition, fmt.Sprintf("topic %q has no partition %d", r.Topic, r.Partition)}
			continue
		case seen[key{r.Topic, r.Partition}]:
			results[i] = ReassignResult{kerr.InvalidRequest, fmt.Sprintf("partition %s-%d is named more than once", r.Topic, r.Partition)}
			continue
		}
		seen[key{r.Topic, r.Partition}] = true
		cur := t.Partitions[r.Partition]
		next, changed, err := planReassignment(cur, r.Replicas, known, mayLead)
		if err != nil {
			results[i] = ReassignResult{err.code, err.msg}
			continue
		}
		if changed {
			rec := partitionRecord(t.ID, r.Partition, cur, next)
			recs = append(recs, metadata.Record{Partition: &rec})
		}
	}
	return recs, results
}

// brokerChecks are the known and mayLead of planReassignment on this
// controller: the registered and the unfenced brokers of a cluster, this
// node alone otherwise.
func (c *Controller) brokerChecks(im *metadata.Image) (known, mayLead func(int32) bool) {
	if !c.Clustered() {
		self := func(id int32) bool { return id == c.nodeID }
		return self, self
	}
	known = func(id int32) bool { _, ok := im.Brokers[id]; return ok }
	return known, im.Unfenced
}

// AlterPartitionReassignments starts, replaces or cancels the
// reassignments reqs asks for, on the active controller (NOT_CONTROLLER
// elsewhere), and answers each. A move that adds no replica completes at
// once; one that does completes when its new replicas are in sync.
func (c *Controller) AlterPartitionReassignments(reqs []Reassignment) ([]ReassignResult, error) {
	if q, ok := c.store.(*quorum); ok && !q.isLeader.Load() {
		return nil, q.notController()
	}
	var results []ReassignResult
	err := c.change(func(im *metadata.Image) ([]metadata.Record, error) {
		known, mayLead := c.brokerChecks(im)
		var recs []metadata.Record
		recs, results = planReassignments(im, reqs, known, mayLead)
		return recs, nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// ListPartitionReassignments lists the reassignments in progress, of
// the partitions named in only (topic → partitions; nil: of every
// partition), sorted by topic and partition; partitions not being moved
// and unknown ones are left out. Only the active controller answers
// (NOT_CONTROLLER elsewhere), so what it lists is what it has committed.
func (c *Controller) ListPartitionReassignments(only map[string][]int32) ([]PartitionReassignment, error) {
	if q, ok := c.store.(*quorum); ok && !q.isLeader.Load() {
		return nil, q.notController()
	}
	var out []PartitionReassignment
	c.View(func(im *metadata.Image) {
		for _, name := range im.TopicNames() {
			t := im.Topics[name]
			parts, named := only[name]
			if only != nil && !named {
				continue
			}
			for i, p := range t.Partitions {
				if !p.Reassigning() || (only != nil && !slices.Contains(parts, int32(i))) {
					continue
				}
				out = append(out, PartitionReassignment{Topic: name, Partition: int32(i), Replicas: slices.Clone(p.Replicas),
					Adding: slices.Clone(p.AddingReplicas), Removing: slices.Clone(p.RemovingReplicas)})
			}
		}
	})
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Topic < out[j].Topic || out[i].Topic == out[j].Topic && out[i].Partition < out[j].Partition
	})
	return out, nil
}
