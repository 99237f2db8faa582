package group

// Incremental reconciliation of a consumer group member (KIP-848): the
// member moves from its current assignment to its target one step at a
// time, so that no partition is ever owned by two members at once.
//
//  1. Partitions it owns that its target no longer holds are revoked
//     first: they leave its assignment at once and stay pending
//     revocation, in its name, until the member reports (in a heartbeat's
//     owned partitions) that it no longer holds them. Its epoch stays
//     where it was meanwhile.
//  2. Only then does it move to the target epoch and gain the target's
//     partitions that no other member holds, assigned or pending
//     revocation; the rest it gains on later heartbeats, as their holders
//     release them.

import "slices"

// memberState is where a member is in its reconciliation, named as Kafka
// names it.
type memberState int8

const (
	memberStable               memberState = iota // at the target
	memberUnrevokedPartitions                     // waiting for it to revoke partitions
	memberUnreleasedPartitions                    // at the target epoch, waiting for partitions others hold
)

var memberStateNames = [...]string{"stable", "unrevoked_partitions", "unreleased_partitions"}

func (s memberState) String() string { return memberStateNames[s] }

// memberAssignment is the reconciliation state of one member.
type memberAssignment struct {
	epoch, prevEpoch int32
	state            memberState
	assigned         assignment // partitions it may use
	revoking         assignment // partitions it must give up, still its own
}

// reconcile is one reconciliation step: from cur towards target, the
// member's target at targetEpoch. owned is what the member reports
// holding, nil when its heartbeat did not say; heldByOthers reports
// whether another member holds a partition.
func reconcile(cur memberAssignment, target assignment, targetEpoch int32, owned assignment, heldByOthers func(topic string, p int32) bool) memberAssignment {
	next := memberAssignment{epoch: cur.epoch, prevEpoch: cur.prevEpoch, state: cur.state,
		assigned: cur.assigned.clone(), revoking: cur.revoking.clone()}
	if len(next.revoking) > 0 && owned != nil && !owned.intersects(next.revoking) {
		next.revoking = assignment{} // the member released them
	}
	// Anything held beyond the target is revoked, whatever else happens.
	extra := next.assigned.minus(target)
	if len(extra) > 0 {
		next.assigned = next.assigned.minus(extra)
		next.revoking = next.revoking.union(extra)
	}
	if len(next.revoking) > 0 {
		next.state = memberUnrevokedPartitions
		return next
	}
	if next.epoch != targetEpoch {
		next.prevEpoch, next.epoch = next.epoch, targetEpoch
	}
	for topic, ps := range target {
		for _, p := range ps {
			if !next.assigned.has(topic, p) && !heldByOthers(topic, p) {
				next.assigned.add(topic, p)
			}
		}
	}
	next.state = memberStable
	if len(target.minus(next.assigned)) > 0 {
		next.state = memberUnreleasedPartitions
	}
	return next
}

func (a assignment) clone() assignment {
	out := assignment{}
	for t, ps := range a {
		if len(ps) > 0 {
			out[t] = slices.Clone(ps)
		}
	}
	return out
}

func (a assignment) has(topic string, p int32) bool {
	_, ok := slices.BinarySearch(a[topic], p)
	return ok
}

func (a assignment) add(topic string, p int32) {
	ps := a[topic]
	i, ok := slices.BinarySearch(ps, p)
	if !ok {
		a[topic] = slices.Insert(ps, i, p)
	}
}

// minus is a without b's partitions.
func (a assignment) minus(b assignment) assignment {
	out := assignment{}
	for t, ps := range a {
		for _, p := range ps {
			if !b.has(t, p) {
				out[t] = append(out[t], p)
			}
		}
	}
	return out
}

func (a assignment) union(b assignment) assignment {
	out := a.clone()
	for t, ps := range b {
		for _, p := range ps {
			out.add(t, p)
		}
	}
	return out
}

func (a assignment) intersects(b assignment) bool {
	for t, ps := range a {
		for _, p := range ps {
			if b.has(t, p) {
				return true
			}
		}
	}
	return false
}

// subsetOf reports whether every partition of a is in b.
func (a assignment) subsetOf(b assignment) bool { return len(a.minus(b)) == 0 }

func (a assignment) size() int {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return n
}

func (a assignment) equal(b assignment) bool { return a.subsetOf(b) && b.subsetOf(a) }
