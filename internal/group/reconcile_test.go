package group

import "testing"

func owners(members map[string]*memberAssignment) func(self string) func(string, int32) bool {
	return func(self string) func(string, int32) bool {
		return func(topic string, p int32) bool {
			for id, m := range members {
				if id != self && (m.assigned.has(topic, p) || m.revoking.has(topic, p)) {
					return true
				}
			}
			return false
		}
	}
}

func TestReconcileRevokesBeforeAnotherMemberIsAssigned(t *testing.T) {
	a := &memberAssignment{epoch: 1, assigned: assignment{"t": {0, 1, 2, 3}}, revoking: assignment{}}
	b := &memberAssignment{epoch: 0, assigned: assignment{}, revoking: assignment{}}
	ms := map[string]*memberAssignment{"a": a, "b": b}
	held := owners(ms)
	targetA, targetB := assignment{"t": {0, 1}}, assignment{"t": {2, 3}}

	// a must give up 2 and 3 first: it keeps its epoch meanwhile.
	*a = reconcile(*a, targetA, 2, nil, held("a"))
	if a.state != memberUnrevokedPartitions || a.epoch != 1 || !a.assigned.equal(targetA) || !a.revoking.equal(targetB) {
		t.Fatalf("a after the target changed: %+v", *a)
	}
	// b moves to the new epoch but gets nothing a still holds.
	*b = reconcile(*b, targetB, 2, assignment{}, held("b"))
	if b.state != memberUnreleasedPartitions || b.epoch != 2 || b.assigned.size() != 0 {
		t.Fatalf("b while a revokes: %+v", *b)
	}
	// A heartbeat that does not say what a owns changes nothing.
	*a = reconcile(*a, targetA, 2, nil, held("a"))
	if a.state != memberUnrevokedPartitions || a.epoch != 1 {
		t.Fatalf("a without owned partitions reported: %+v", *a)
	}
	// a reports it still owns 2: still revoking.
	*a = reconcile(*a, targetA, 2, assignment{"t": {0, 1, 2}}, held("a"))
	if a.state != memberUnrevokedPartitions {
		t.Fatalf("a still owning a revoked partition: %+v", *a)
	}
	// a reports it released them: it reaches the target epoch.
	*a = reconcile(*a, targetA, 2, assignment{"t": {0, 1}}, held("a"))
	if a.state != memberStable || a.epoch != 2 || a.prevEpoch != 1 || a.revoking.size() != 0 {
		t.Fatalf("a after revoking: %+v", *a)
	}
	// Only now does b get them.
	*b = reconcile(*b, targetB, 2, assignment{}, held("b"))
	if b.state != memberStable || !b.assigned.equal(targetB) {
		t.Fatalf("b after a released: %+v", *b)
	}
}

func TestReconcileNeverAssignsAPartitionTwice(t *testing.T) {
	// Three members shuffle 8 partitions through several targets; after
	// every step no partition is held by two members.
	ms := map[string]*memberAssignment{}
	for _, id := range []string{"a", "b", "c"} {
		ms[id] = &memberAssignment{assigned: assignment{}, revoking: assignment{}}
	}
	held := owners(ms)
	targets := []map[string]assignment{
		{"a": {"t": {0, 1, 2, 3, 4, 5, 6, 7}}, "b": {}, "c": {}},
		{"a": {"t": {0, 1, 2}}, "b": {"t": {3, 4, 5}}, "c": {"t": {6, 7}}},
		{"a": {"t": {5, 6, 7}}, "b": {"t": {0, 1, 2}}, "c": {"t": {3, 4}}},
		{"a": {}, "b": {"t": {0, 1, 2, 3}}, "c": {"t": {4, 5, 6, 7}}},
	}
	for epoch, target := range targets {
		for round := 0; round < 4; round++ {
			for _, id := range []string{"a", "b", "c"} {
				m := ms[id]
				owned := m.assigned.clone() // the member reports what it holds after revoking
				*m = reconcile(*m, target[id], int32(epoch+1), owned, held(id))
				seen := map[topicPartition]string{}
				for oid, o := range ms {
					for _, a := range []assignment{o.assigned, o.revoking} {
						for _, p := range a["t"] {
							k := topicPartition{"t", p}
							if other, dup := seen[k]; dup && other != oid {
								t.Fatalf("target %d: partition %d held by %s and %s", epoch, p, other, oid)
							}
							seen[k] = oid
						}
					}
				}
			}
		}
		for id, m := range ms {
			if !m.assigned.equal(target[id]) || m.epoch != int32(epoch+1) {
				t.Fatalf("target %d: %s did not converge: %+v", epoch, id, *m)
			}
		}
	}
}
