package controller

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// part is a partition state for the planning tables.
type part struct {
	leader, epoch    int32
	replicas, isr    []int32
	adding, removing []int32
}

func (p part) partition() metadata.Partition {
	return metadata.Partition{Leader: p.leader, LeaderEpoch: p.epoch, Replicas: p.replicas, ISR: p.isr,
		AddingReplicas: p.adding, RemovingReplicas: p.removing, PartitionEpoch: 7}
}

func ids(v ...int32) []int32 { return v }

// Brokers 1-4 are registered; 4 is fenced and may not lead.
var (
	knownBroker = func(id int32) bool { return id >= 1 && id <= 4 }
	mayLeadNow  = func(id int32) bool { return id >= 1 && id <= 3 }
)

func TestPlanReassignmentGrowsMovesAndCompletesAsKIP455Says(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cur    part
		target []int32
		want   part // epoch: the leader epoch expected
		same   bool // no change at all
	}{
		{
			name:   "a move to new brokers grows the assignment, target first; leader and ISR stay",
			cur:    part{leader: 1, epoch: 3, replicas: ids(1), isr: ids(1)},
			target: ids(2, 3),
			want:   part{leader: 1, epoch: 3, replicas: ids(2, 3, 1), isr: ids(1), adding: ids(2, 3), removing: ids(1)},
		},
		{
			name:   "a move adding a replica keeps the current ones",
			cur:    part{leader: 1, epoch: 3, replicas: ids(1, 2), isr: ids(1, 2)},
			target: ids(1, 2, 3),
			want:   part{leader: 1, epoch: 3, replicas: ids(1, 2, 3), isr: ids(1, 2), adding: ids(3)},
		},
		{
			name:   "the same assignment changes nothing",
			cur:    part{leader: 1, epoch: 3, replicas: ids(1, 2), isr: ids(1, 2)},
			target: ids(1, 2),
			same:   true,
		},
		{
			name:   "a new order completes at once, the leader kept",
			cur:    part{leader: 1, epoch: 3, replicas: ids(1, 2), isr: ids(1, 2)},
			target: ids(2, 1),
			want:   part{leader: 1, epoch: 3, replicas: ids(2, 1), isr: ids(2, 1)},
		},
		{
			name:   "a shrink completes at once at a new leader epoch",
			cur:    part{leader: 1, epoch: 3, replicas: ids(1, 2, 3), isr: ids(1, 2, 3)},
			target: ids(1, 2),
			want:   part{leader: 1, epoch: 4, replicas: ids(1, 2), isr: ids(1, 2)},
		},
		{
			name:   "a shrink that removes the leader hands over to an in-sync target member",
			cur:    part{leader: 1, epoch: 3, replicas: ids(1, 2, 3), isr: ids(1, 2, 3)},
			target: ids(3, 2),
			want:   part{leader: 3, epoch: 4, replicas: ids(3, 2), isr: ids(3, 2)},
		},
		{
			name:   "a shrink to replicas out of sync waits for them",
			cur:    part{leader: 1, epoch: 3, replicas: ids(1, 2), isr: ids(1)},
			target: ids(2),
			want:   part{leader: 1, epoch: 3, replicas: ids(2, 1), isr: ids(1), removing: ids(1)},
		},
		{
			name:   "a fenced broker may be added",
			cur:    part{leader: 1, epoch: 3, replicas: ids(1), isr: ids(1)},
			target: ids(1, 4),
			want:   part{leader: 1, epoch: 3, replicas: ids(1, 4), isr: ids(1), adding: ids(4)},
		},
		{
			name:   "a new move replaces the one in progress, planned from the original assignment",
			cur:    part{leader: 1, epoch: 3, replicas: ids(2, 3, 1), isr: ids(1, 2), adding: ids(2, 3), removing: ids(1)},
			target: ids(2, 4),
			want:   part{leader: 1, epoch: 4, replicas: ids(2, 4, 1), isr: ids(2, 1), adding: ids(2, 4), removing: ids(1)},
		},
		{
			name:   "a new move whose new replicas are already in sync completes at once",
			cur:    part{leader: 1, epoch: 3, replicas: ids(2, 3, 1), isr: ids(1, 2), adding: ids(2, 3), removing: ids(1)},
			target: ids(2),
			want:   part{leader: 2, epoch: 4, replicas: ids(2), isr: ids(2)},
		},
		{
			name:   "a new move dropping the leader, a replica the old move added, elects from the new ISR",
			cur:    part{leader: 3, epoch: 5, replicas: ids(2, 3, 1), isr: ids(3, 1), adding: ids(2, 3), removing: ids(1)},
			target: ids(2),
			want:   part{leader: 1, epoch: 6, replicas: ids(2, 1), isr: ids(1), adding: ids(2), removing: ids(1)},
		},
		{
			name:   "a cancel returns to the original assignment",
			cur:    part{leader: 1, epoch: 3, replicas: ids(2, 3, 1), isr: ids(1, 2), adding: ids(2, 3), removing: ids(1)},
			target: nil,
			want:   part{leader: 1, epoch: 4, replicas: ids(1), isr: ids(1)},
		},
		{
			name:   "a cancel whose leader was being added elects an original replica",
			cur:    part{leader: 3, epoch: 3, replicas: ids(3, 1, 2), isr: ids(3, 2), adding: ids(3), removing: ids(1)},
			target: nil,
			want:   part{leader: 2, epoch: 4, replicas: ids(1, 2), isr: ids(2)},
		},
		{
			name:   "a partition without a leader keeps none",
			cur:    part{leader: -1, epoch: 3, replicas: ids(1, 2), isr: ids(1)},
			target: ids(1, 2, 3),
			want:   part{leader: -1, epoch: 3, replicas: ids(1, 2, 3), isr: ids(1), adding: ids(3)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := tc.cur.partition()
			next, changed, err := planReassignment(cur, tc.target, knownBroker, mayLeadNow)
			if err != nil {
				t.Fatalf("refused: %v %s", err.code, err.msg)
			}
			if changed == tc.same {
				t.Fatalf("changed %v, want %v: %+v", changed, !tc.same, next)
			}
			if tc.same {
				return
			}
			w := tc.want
			if next.Leader != w.leader || next.LeaderEpoch != w.epoch || !slices.Equal(next.Replicas, w.replicas) ||
				!slices.Equal(next.ISR, w.isr) || !slices.Equal(next.AddingReplicas, w.adding) ||
				!slices.Equal(next.RemovingReplicas, w.removing) || next.PartitionEpoch != cur.PartitionEpoch+1 {
				t.Fatalf("got leader %d epoch %d replicas %v isr %v adding %v removing %v partition epoch %d\nwant %+v",
					next.Leader, next.LeaderEpoch, next.Replicas, next.ISR, next.AddingReplicas, next.RemovingReplicas, next.PartitionEpoch, w)
			}
		})
	}
}

func TestPlanReassignmentRefusesWhatKafkaRefuses(t *testing.T) {
	plain := part{leader: 1, epoch: 3, replicas: ids(1, 2), isr: ids(1, 2)}
	moving := part{leader: 2, epoch: 3, replicas: ids(2, 1), isr: ids(2), adding: ids(2), removing: ids(1)}
	for _, tc := range []struct {
		name   string
		cur    part
		target []int32
		want   *kerr.Error
	}{
		{"an empty replica list", plain, []int32{}, kerr.InvalidReplicaAssignment},
		{"a broker listed twice", plain, ids(1, 2, 1), kerr.InvalidReplicaAssignment},
		{"an unknown broker", plain, ids(1, 9), kerr.InvalidReplicaAssignment},
		{"a negative broker id", plain, ids(1, -1), kerr.InvalidReplicaAssignment},
		{"a cancel with nothing in progress", plain, nil, kerr.NoReassignmentInProgress},
		{"a cancel with no original replica in sync", moving, nil, kerr.InvalidReplicaAssignment},
	} {
		_, changed, err := planReassignment(tc.cur.partition(), tc.target, knownBroker, mayLeadNow)
		if err == nil || err.code != tc.want || changed || err.msg == "" {
			t.Errorf("%s: %+v (changed %v), want %v with a message", tc.name, err, changed, tc.want)
		}
	}
}

func TestSettleReassignmentWaitsForEveryAddingReplicaAndALeader(t *testing.T) {
	moving := func(isr ...int32) metadata.Partition {
		return part{leader: 1, epoch: 3, replicas: ids(2, 3, 1), isr: isr, adding: ids(2, 3), removing: ids(1)}.partition()
	}
	if p := moving(1, 2); settleReassignment(&p, mayLeadNow) || !p.Reassigning() {
		t.Fatalf("completed with 3 out of sync: %+v", p)
	}
	p := moving(1, 2, 3)
	if !settleReassignment(&p, mayLeadNow) || p.Leader != 2 || !slices.Equal(p.Replicas, ids(2, 3)) || !slices.Equal(p.ISR, ids(2, 3)) || p.Reassigning() {
		t.Fatalf("every adding replica in sync: %+v", p)
	}
	// The leader must go, and no in-sync target member may lead: wait.
	p = moving(1, 2, 3)
	if settleReassignment(&p, func(id int32) bool { return id == 1 }) || !p.Reassigning() {
		t.Fatalf("completed with no target member able to lead: %+v", p)
	}
}

// The whole path on an image: the move starts, the leader's ISR
// expansions bring the new replicas in, and the expansion that brings
// the last one completes it, electing a target member at a new leader
// epoch; the records apply to the image as planned.
func TestAlterPartitionCompletesAReassignmentWhenTheLastAddingReplicaJoins(t *testing.T) {
	f := newMembershipFixture(t)
	tid := f.im.Topics["t"].ID
	start := f.partition("t", 0) // leader 1, replicas and ISR [1]
	recs, res := planReassignments(f.im, []Reassignment{{Topic: "t", Partition: 0, Replicas: ids(2, 3)}},
		func(id int32) bool { _, ok := f.im.Brokers[id]; return ok }, f.im.Unfenced)
	if res[0].Err != nil || len(recs) != 1 {
		t.Fatalf("start: %+v, %d records", res[0], len(recs))
	}
	f.apply(recs)
	p := f.partition("t", 0)
	if !slices.Equal(p.Replicas, ids(2, 3, 1)) || !slices.Equal(p.AddingReplicas, ids(2, 3)) || p.Leader != 1 {
		t.Fatalf("after the start: %+v", p)
	}
	expand := func(isr ...int32) ISRResult {
		t.Helper()
		cur := f.partition("t", 0)
		recs, res := planISRChanges(f.im, 1, f.im.Brokers[1].Epoch, []ISRChange{{TopicID: tid, Partition: 0,
			LeaderEpoch: cur.LeaderEpoch, PartitionEpoch: cur.PartitionEpoch, NewISR: isr}})
		if res[0].Err != nil {
			t.Fatalf("ISR %v: %v", isr, res[0].Err)
		}
		f.apply(recs)
		return res[0]
	}
	expand(1, 2)
	if p := f.partition("t", 0); !p.Reassigning() || !slices.Equal(p.ISR, ids(2, 1)) {
		t.Fatalf("with 3 not yet in sync: %+v", p)
	}
	r := expand(1, 2, 3)
	p = f.partition("t", 0)
	if p.Reassigning() || !slices.Equal(p.Replicas, ids(2, 3)) || !slices.Equal(p.ISR, ids(2, 3)) || p.Leader != 2 ||
		p.LeaderEpoch != start.LeaderEpoch+1 {
		t.Fatalf("after the last adding replica joined: %+v", p)
	}
	if r.Partition.Leader != 2 || r.Partition.PartitionEpoch != p.PartitionEpoch {
		t.Fatalf("AlterPartition answered %+v; the partition is %+v", r.Partition, p)
	}
	// Nothing is left in progress, so a cancel finds none.
	if _, res := planReassignments(f.im, []Reassignment{{Topic: "t", Partition: 0}}, knownBroker, mayLeadNow); res[0].Err != kerr.NoReassignmentInProgress {
		t.Fatalf("cancel after completion: %+v", res[0])
	}
}

func TestPlanReassignmentsAnswersEachPartition(t *testing.T) {
	f := newMembershipFixture(t)
	recs, res := planReassignments(f.im, []Reassignment{
		{Topic: "nope", Partition: 0, Replicas: ids(1)},
		{Topic: "t", Partition: 9, Replicas: ids(1)},
		{Topic: "t", Partition: 1, Replicas: ids(1)},
		{Topic: "t", Partition: 1, Replicas: ids(3)},
		{Topic: "t", Partition: 2, Replicas: ids(3)}, // already there
	}, knownBroker, mayLeadNow)
	want := []*kerr.Error{kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition, nil, kerr.InvalidRequest, nil}
	for i, w := range want {
		if res[i].Err != w {
			t.Errorf("request %d: %+v, want %v", i, res[i], w)
		}
	}
	if len(recs) != 1 || recs[0].Partition.Index != 1 {
		t.Fatalf("records %+v; want one, for partition 1", recs)
	}
	f.apply(recs)
}
