package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// electImage is an image of brokers 1-3 and a topic "t" with one
// partition per given state, each at leader epoch 5 and partition
// epoch 7.
func electImage(t *testing.T, parts ...metadata.Partition) *metadata.Image {
	t.Helper()
	im := metadata.NewImage()
	tid := metadata.NewTopicID()
	recs := []metadata.Record{{Topic: &metadata.TopicRecord{Name: "t", ID: tid}}}
	for i, p := range parts {
		recs = append(recs, metadata.Record{Partition: &metadata.PartitionRecord{TopicID: tid, Index: int32(i), Leader: p.Leader,
			LeaderEpoch: 5, Replicas: p.Replicas, ISR: p.ISR, PartitionEpoch: 7}})
	}
	if err := im.ApplyBatch(recs); err != nil {
		t.Fatal(err)
	}
	return im
}

func liveSet(ids ...int32) func(int32) bool {
	return func(id int32) bool { return slices.Contains(ids, id) }
}

func TestPlanElectionsAnswersEachPartitionAsKafkaDoes(t *testing.T) {
	cases := []struct {
		name    string
		typ     ElectionType
		p       metadata.Partition
		live    []int32
		err     *kerr.Error
		leader  int32   // after the election
		isr     []int32 // after the election
		unclean bool    // the record counts as an unclean election
	}{
		{name: "preferred leads already", typ: ElectPreferred, p: electPart(1, []int32{1, 2, 3}, []int32{1, 2, 3}), live: []int32{1, 2, 3}, err: kerr.ElectionNotNeeded},
		{name: "preferred live and in sync is elected", typ: ElectPreferred, p: electPart(2, []int32{1, 2, 3}, []int32{1, 2, 3}), live: []int32{1, 2, 3}, leader: 1, isr: []int32{1, 2, 3}},
		{name: "preferred out of sync is not elected", typ: ElectPreferred, p: electPart(2, []int32{1, 2, 3}, []int32{2, 3}), live: []int32{1, 2, 3}, err: kerr.PreferredLeaderNotAvailable},
		{name: "preferred fenced is not elected", typ: ElectPreferred, p: electPart(2, []int32{1, 2, 3}, []int32{1, 2, 3}), live: []int32{2, 3}, err: kerr.PreferredLeaderNotAvailable},
		{name: "preferred elected on a leaderless partition", typ: ElectPreferred, p: electPart(-1, []int32{1, 2, 3}, []int32{1}), live: []int32{1}, leader: 1, isr: []int32{1}},
		{name: "unclean with a live leader is not needed", typ: ElectUnclean, p: electPart(2, []int32{1, 2, 3}, []int32{2}), live: []int32{1, 2}, err: kerr.ElectionNotNeeded},
		{name: "unclean prefers a live ISR member", typ: ElectUnclean, p: electPart(-1, []int32{1, 2, 3}, []int32{2, 3}), live: []int32{1, 3}, leader: 3, isr: []int32{3}},
		{name: "unclean elects a live out-of-sync replica when the ISR is dead", typ: ElectUnclean, p: electPart(2, []int32{1, 2, 3}, []int32{2}), live: []int32{3}, leader: 3, isr: []int32{3}, unclean: true},
		{name: "unclean with no live replica elects nobody", typ: ElectUnclean, p: electPart(-1, []int32{1, 2, 3}, []int32{2}), live: nil, err: kerr.EligibleLeadersNotAvailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			im := electImage(t, tc.p)
			recs, results := planElections(im, tc.typ, []ElectTarget{{"t", 0}}, liveSet(tc.live...))
			if len(results) != 1 || results[0].Topic != "t" || results[0].Partition != 0 {
				t.Fatalf("results %+v; want one for t/0", results)
			}
			if results[0].Err != tc.err {
				t.Fatalf("error %v (%s); want %v", results[0].Err, results[0].Msg, tc.err)
			}
			if tc.err != nil {
				if len(recs) != 0 {
					t.Fatalf("a failed election planned records %+v", recs)
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("planned %d records; want 1", len(recs))
			}
			r := recs[0].Partition
			if r.Leader != tc.leader || !slices.Equal(r.ISR, tc.isr) || results[0].Leader != tc.leader {
				t.Fatalf("elected %d with ISR %v (answered %d); want %d with %v", r.Leader, r.ISR, results[0].Leader, tc.leader, tc.isr)
			}
			if r.LeaderEpoch != 6 || r.PartitionEpoch != 8 {
				t.Fatalf("leader epoch %d, partition epoch %d; want 6 and 8, as an automatic election makes", r.LeaderEpoch, r.PartitionEpoch)
			}
			if err := im.ApplyBatch(recs); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int64{false: 0, true: 1}[tc.unclean]; im.UncleanElections != want {
				t.Fatalf("unclean elections counted %d; want %d", im.UncleanElections, want)
			}
		})
	}
}

func electPart(leader int32, replicas, isr []int32) metadata.Partition {
	return metadata.Partition{Leader: leader, Replicas: replicas, ISR: isr}
}

func TestPlanElectionsOfEveryPartitionLeavesOutThoseThatNeedNone(t *testing.T) {
	im := electImage(t,
		electPart(1, []int32{1, 2}, []int32{1, 2}), // preferred leads
		electPart(2, []int32{1, 2}, []int32{1, 2}), // elected back
		electPart(3, []int32{2, 3}, []int32{3}),    // preferred out of sync
	)
	recs, results := planElections(im, ElectPreferred, nil, liveSet(1, 2, 3))
	if len(recs) != 1 || recs[0].Partition.Index != 1 || recs[0].Partition.Leader != 1 {
		t.Fatalf("records %+v; want partition 1 led by 1", recs)
	}
	if len(results) != 2 || results[0].Partition != 1 || results[0].Err != nil || results[1].Partition != 2 || results[1].Err != kerr.PreferredLeaderNotAvailable {
		t.Fatalf("results %+v; want partition 1 elected and partition 2 PREFERRED_LEADER_NOT_AVAILABLE", results)
	}
}

func TestPlanElectionsAnswersUnknownPartitionsAndElectsADuplicateOnce(t *testing.T) {
	im := electImage(t, electPart(2, []int32{1, 2}, []int32{1, 2}))
	recs, results := planElections(im, ElectPreferred, []ElectTarget{{"t", 0}, {"t", 0}, {"t", 1}, {"t", -1}, {"nope", 0}}, liveSet(1, 2))
	if len(recs) != 1 {
		t.Fatalf("planned %d records; want one (a second record of one partition would not apply)", len(recs))
	}
	if err := im.ApplyBatch(recs); err != nil {
		t.Fatal(err)
	}
	want := []*kerr.Error{nil, kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition}
	if len(results) != len(want) {
		t.Fatalf("results %+v; want %d", results, len(want))
	}
	for i, w := range want {
		if results[i].Err != w {
			t.Fatalf("result %d: %+v; want %v", i, results[i], w)
		}
	}
}

func TestPlanElectionsRefusesAnUnknownElectionType(t *testing.T) {
	im := electImage(t, electPart(2, []int32{1, 2}, []int32{1, 2}))
	recs, results := planElections(im, ElectionType(7), []ElectTarget{{"t", 0}}, liveSet(1, 2))
	if len(recs) != 0 || len(results) != 1 || results[0].Err != kerr.InvalidRequest {
		t.Fatalf("records %+v, results %+v; want none and INVALID_REQUEST", recs, results)
	}
}

func TestPlanRebalanceMovesLeadershipOnlyPastTheImbalancePercentage(t *testing.T) {
	// Broker 1 is preferred for four partitions; led elsewhere: one (25%)
	// or none. Broker 2 is preferred for one, led by 3.
	four := func(away int) []metadata.Partition {
		var ps []metadata.Partition
		for i := range 4 {
			leader := int32(1)
			if i < away {
				leader = 2
			}
			ps = append(ps, electPart(leader, []int32{1, 2, 3}, []int32{1, 2, 3}))
		}
		return ps
	}
	cases := []struct {
		name    string
		parts   []metadata.Partition
		percent int64
		live    []int32
		moved   []int32 // partitions whose leadership moves back
	}{
		{name: "balanced", parts: four(0), percent: 10, live: []int32{1, 2, 3}},
		{name: "25% above 10%", parts: four(1), percent: 10, live: []int32{1, 2, 3}, moved: []int32{0}},
		{name: "25% not above 25%", parts: four(1), percent: 25, live: []int32{1, 2, 3}},
		{name: "50% above 25%", parts: four(2), percent: 25, live: []int32{1, 2, 3}, moved: []int32{0, 1}},
		{name: "preferred not live", parts: four(2), percent: 10, live: []int32{2, 3}},
		{name: "preferred out of sync", parts: []metadata.Partition{electPart(2, []int32{1, 2}, []int32{2})}, percent: 0, live: []int32{1, 2}},
		{name: "every imbalanced broker", parts: append(four(1), electPart(3, []int32{2, 3}, []int32{2, 3})), percent: 10, live: []int32{1, 2, 3}, moved: []int32{0, 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			im := electImage(t, tc.parts...)
			recs := planRebalance(im, tc.percent, liveSet(tc.live...))
			var moved []int32
			for _, r := range recs {
				p := r.Partition
				if p.Leader != im.Topics["t"].Partitions[p.Index].Replicas[0] {
					t.Fatalf("partition %d moved to %d, not its preferred replica", p.Index, p.Leader)
				}
				moved = append(moved, p.Index)
			}
			if !slices.Equal(moved, tc.moved) {
				t.Fatalf("moved %v; want %v", moved, tc.moved)
			}
			if err := im.ApplyBatch(recs); err != nil {
				t.Fatal(err)
			}
			if im.UncleanElections != 0 {
				t.Fatal("a preferred election counted as unclean")
			}
		})
	}
}

// The count of unclean elections is part of the image's stored form, so
// a node restarted from a snapshot reports the count every other node
// does.
func TestUncleanElectionCountSurvivesASnapshot(t *testing.T) {
	im := electImage(t, electPart(2, []int32{1, 2, 3}, []int32{2}))
	recs, _ := planElections(im, ElectUnclean, []ElectTarget{{"t", 0}}, liveSet(3))
	if err := im.ApplyBatch(recs); err != nil {
		t.Fatal(err)
	}
	back, err := metadata.DecodeImage(im.Encode(), im.Offset)
	if err != nil {
		t.Fatal(err)
	}
	if im.UncleanElections != 1 || back.UncleanElections != 1 {
		t.Fatalf("counted %d, %d after a snapshot; want 1", im.UncleanElections, back.UncleanElections)
	}
}

// The automatic elections of planMembership are counted the same way: a
// clean failover to an ISR member is not unclean, the election of a
// replica outside the ISR (unclean.leader.election.enable) is.
func TestAutomaticUncleanElectionIsCountedAndACleanFailoverIsNot(t *testing.T) {
	for _, shrunk := range []bool{false, true} {
		f := newMembershipFixture(t)
		f.unclean = func(*metadata.Topic) bool { return true }
		if shrunk {
			tid := f.im.Topics["t"].ID
			p3 := f.partition("t", 3) // leader 1, replicas and ISR [1 2]
			f.apply([]metadata.Record{{Partition: &metadata.PartitionRecord{TopicID: tid, Index: 3, Leader: 1, LeaderEpoch: p3.LeaderEpoch,
				Replicas: p3.Replicas, ISR: []int32{1}, PartitionEpoch: p3.PartitionEpoch + 1}}})
		}
		for at := time.Duration(0); at <= 10*time.Second; at += 2 * time.Second {
			f.heartbeat(at, 2, false)
			f.heartbeat(at, 3, false)
			f.plan(at)
		}
		if got := f.partition("t", 3); got.Leader != 2 {
			t.Fatalf("ISR shrunk=%v: leader %d after broker 1 stopped; want 2", shrunk, got.Leader)
		}
		if want := map[bool]int64{false: 0, true: 1}[shrunk]; f.im.UncleanElections != want {
			t.Fatalf("ISR shrunk=%v: %d unclean elections counted; want %d", shrunk, f.im.UncleanElections, want)
		}
	}
}

// A reassignment completed by the ISR change that brings its new replica
// in may hand the leadership to that replica in the same record; the
// replica is in sync, so that is no unclean election.
func TestReassignmentHandingLeadershipToAJoiningReplicaIsNotUnclean(t *testing.T) {
	im := electImage(t, electPart(1, []int32{1}, []int32{1}))
	tid := im.Topics["t"].ID
	// Move the partition from broker 1 to broker 2.
	start := metadata.PartitionRecord{TopicID: tid, Index: 0, Leader: 1, LeaderEpoch: 5, Replicas: []int32{2, 1}, ISR: []int32{1},
		PartitionEpoch: 8, AddingReplicas: metadata.IDs([]int32{2}), RemovingReplicas: metadata.IDs([]int32{1})}
	if err := im.ApplyBatch([]metadata.Record{{Partition: &start}}); err != nil {
		t.Fatal(err)
	}
	cur := im.Topics["t"].Partitions[0]
	next := cur
	next.ISR = []int32{2, 1} // the leader lets broker 2 in
	if !settleReassignment(&next, liveSet(1, 2)) {
		t.Fatalf("the move did not complete: %+v", next)
	}
	bumpEpochs(cur, &next)
	rec := partitionRecord(tid, 0, cur, next)
	if rec.Leader != 2 || !slices.Equal(rec.ISR, []int32{2}) {
		t.Fatalf("completed move: leader %d, ISR %v; want 2 alone", rec.Leader, rec.ISR)
	}
	if err := im.ApplyBatch([]metadata.Record{{Partition: &rec}}); err != nil {
		t.Fatal(err)
	}
	if im.UncleanElections != 0 {
		t.Fatalf("a completed reassignment counted as %d unclean elections; want 0", im.UncleanElections)
	}
}

// A partition being reassigned is left to its move: the automatic
// rebalance does not elect its (changing) preferred replica.
func TestPlanRebalanceLeavesAPartitionBeingReassignedAlone(t *testing.T) {
	im := electImage(t, electPart(2, []int32{1, 2}, []int32{1, 2}))
	tid := im.Topics["t"].ID
	moving := metadata.PartitionRecord{TopicID: tid, Index: 0, Leader: 2, LeaderEpoch: 5, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2},
		PartitionEpoch: 8, AddingReplicas: metadata.IDs([]int32{3}), RemovingReplicas: metadata.IDs(nil)}
	if err := im.ApplyBatch([]metadata.Record{{Partition: &moving}}); err != nil {
		t.Fatal(err)
	}
	if recs := planRebalance(im, 0, liveSet(1, 2, 3)); len(recs) != 0 {
		t.Fatalf("rebalance planned %+v for a partition being reassigned; want nothing", recs)
	}
}
