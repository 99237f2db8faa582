package metadata

import (
	"reflect"
	"slices"
	"testing"
)

// reassigningImage is sampleImage with partition 0 of topic "a" moving
// from [1] to [2 3]: replicas [2 3 1], adding [2 3], removing [1].
func reassigningImage(t *testing.T) *Image {
	t.Helper()
	return reassigned(t, sampleImage(t))
}

// reassigned is before with partition 0 of topic "a" moving as in
// reassigningImage.
func reassigned(t *testing.T, before *Image) *Image {
	t.Helper()
	im := before.Clone()
	a := im.Topics["a"].ID
	rec := PartitionRecord{TopicID: a, Index: 0, Leader: 1, Replicas: []int32{2, 3, 1}, ISR: []int32{1},
		PartitionEpoch: 1, AddingReplicas: IDs([]int32{2, 3}), RemovingReplicas: IDs([]int32{1})}
	if err := im.Apply(Record{Partition: &rec}); err != nil {
		t.Fatal(err)
	}
	return im
}

func TestPartitionRecordStatingAnAssignmentReplacesTheReplicas(t *testing.T) {
	im := reassigningImage(t)
	p := im.Topics["a"].Partitions[0]
	if !slices.Equal(p.Replicas, []int32{2, 3, 1}) || !slices.Equal(p.AddingReplicas, []int32{2, 3}) ||
		!slices.Equal(p.RemovingReplicas, []int32{1}) || !p.Reassigning() {
		t.Fatalf("partition after the start of a reassignment: %+v", p)
	}
	// An ISR change that states no assignment (as AlterPartition and
	// elections write) keeps the reassignment, whatever Replicas it
	// carries.
	a := im.Topics["a"].ID
	if err := im.Apply(Record{Partition: &PartitionRecord{TopicID: a, Index: 0, Leader: 1, Replicas: []int32{1},
		ISR: []int32{1, 2}, PartitionEpoch: 2}}); err != nil {
		t.Fatal(err)
	}
	p = im.Topics["a"].Partitions[0]
	if !slices.Equal(p.Replicas, []int32{2, 3, 1}) || !slices.Equal(p.AddingReplicas, []int32{2, 3}) || !slices.Equal(p.ISR, []int32{1, 2}) {
		t.Fatalf("an ISR change lost the reassignment: %+v", p)
	}
	// The completion states empty lists: the reassignment is over.
	if err := im.Apply(Record{Partition: &PartitionRecord{TopicID: a, Index: 0, Leader: 2, LeaderEpoch: 1, Replicas: []int32{2, 3},
		ISR: []int32{2}, PartitionEpoch: 3, AddingReplicas: IDs(nil), RemovingReplicas: IDs(nil)}}); err != nil {
		t.Fatal(err)
	}
	p = im.Topics["a"].Partitions[0]
	if !slices.Equal(p.Replicas, []int32{2, 3}) || p.Reassigning() || p.AddingReplicas != nil || p.Leader != 2 {
		t.Fatalf("after the completion: %+v", p)
	}
}

func TestPartitionRecordRefusesAMalformedAssignment(t *testing.T) {
	im := sampleImage(t)
	a := im.Topics["a"].ID
	for _, tc := range []struct {
		name                string
		replicas, isr       []int32
		adding, removing    []int32
		leader, leaderEpoch int32
	}{
		{"an empty replica list", nil, []int32{1}, nil, nil, 1, 0},
		{"a repeated replica", []int32{1, 1}, []int32{1}, nil, nil, 1, 0},
		{"an adding replica outside the replicas", []int32{1, 2}, []int32{1}, []int32{3}, nil, 1, 0},
		{"a replica both added and removed", []int32{1, 2}, []int32{1}, []int32{2}, []int32{2}, 1, 0},
		{"every replica removed", []int32{1, 2}, []int32{1}, nil, []int32{1, 2}, 1, 0},
		{"an ISR member outside the new replicas", []int32{2}, []int32{1}, nil, nil, 1, 0},
	} {
		rec := PartitionRecord{TopicID: a, Index: 0, Leader: tc.leader, LeaderEpoch: tc.leaderEpoch, Replicas: tc.replicas, ISR: tc.isr,
			AddingReplicas: IDs(tc.adding), RemovingReplicas: IDs(tc.removing)}
		if err := im.Apply(Record{Partition: &rec}); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if p := im.Topics["a"].Partitions[0]; !slices.Equal(p.Replicas, []int32{1}) || p.Reassigning() {
		t.Fatalf("refused records changed the partition: %+v", p)
	}
}

// Records and snapshots written before reassignment existed carry no
// adding or removing replicas: they decode as partitions with none in
// progress, and a change record of theirs leaves the replicas alone.
func TestRecordsAndSnapshotsWithoutReassignmentFieldsStillDecode(t *testing.T) {
	old := []byte(`{"partition":{"topicId":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1],"index":0,"leader":1,"leaderEpoch":0,"replicas":[1,2],"isr":[1,2]}}`)
	r, err := DecodeRecord(old)
	if err != nil {
		t.Fatal(err)
	}
	if r.Partition == nil || r.Partition.StatesAssignment() {
		t.Fatalf("old partition record decoded as %+v", r.Partition)
	}
	im, err := DecodeImage([]byte(`{"topics":[{"Name":"a","ID":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1],"Partitions":[{"Leader":1,"LeaderEpoch":0,"Replicas":[1,2],"ISR":[1,2]}]}],"nextProducerId":0}`), 3)
	if err != nil {
		t.Fatal(err)
	}
	if p := im.Topics["a"].Partitions[0]; p.Reassigning() || !slices.Equal(p.Replicas, []int32{1, 2}) {
		t.Fatalf("old snapshot partition: %+v", p)
	}
	if err := im.Apply(r); err != nil {
		t.Fatalf("old change record on an old snapshot: %v", err)
	}
	// A record with empty lists states "none in progress", and survives
	// its stored form as such.
	rec := Record{Partition: &PartitionRecord{Replicas: []int32{1}, ISR: []int32{1}, AddingReplicas: IDs(nil), RemovingReplicas: IDs(nil)}}
	back, err := DecodeRecord(rec.Encode())
	if err != nil || !back.Partition.StatesAssignment() || len(*back.Partition.AddingReplicas) != 0 {
		t.Fatalf("record with empty lists came back as %+v (%v)", back.Partition, err)
	}
}

func TestReassignmentSurvivesSnapshotAndDiff(t *testing.T) {
	before := sampleImage(t)
	im := reassigned(t, before)
	got, err := DecodeImage(im.Encode(), im.Offset)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, im) {
		t.Fatalf("decoded image differs:\n got %+v\nwant %+v", got.Topics["a"].Partitions, im.Topics["a"].Partitions)
	}
	// The diff from before the reassignment leads to it, and the diff
	// from it to its completion ends it.
	replayed := before.Clone()
	for _, r := range Diff(before, im) {
		if err := replayed.Apply(r); err != nil {
			t.Fatalf("diff record %+v: %v", r, err)
		}
	}
	if !reflect.DeepEqual(replayed.Encode(), im.Encode()) {
		t.Fatalf("diff does not lead to the reassigning image:\n got %s\nwant %s", replayed.Encode(), im.Encode())
	}
	done := im.Clone()
	a := im.Topics["a"].ID
	// 2 and 3 join the ISR, then a record completes the move.
	if err := done.Apply(Record{Partition: &PartitionRecord{TopicID: a, Index: 0, Leader: 1, Replicas: []int32{2, 3, 1}, ISR: []int32{1, 2, 3}, PartitionEpoch: 2}}); err != nil {
		t.Fatal(err)
	}
	caughtUp := done.Clone()
	if err := done.Apply(Record{Partition: &PartitionRecord{TopicID: a, Index: 0, Leader: 2, LeaderEpoch: 1, Replicas: []int32{2, 3},
		ISR: []int32{2, 3}, PartitionEpoch: 3, AddingReplicas: IDs(nil), RemovingReplicas: IDs(nil)}}); err != nil {
		t.Fatal(err)
	}
	if p := done.Topics["a"].Partitions[0]; p.Reassigning() || !slices.Equal(p.Replicas, []int32{2, 3}) {
		t.Fatalf("completed partition: %+v", p)
	}
	replayed = caughtUp.Clone()
	for _, r := range Diff(caughtUp, done) {
		if err := replayed.Apply(r); err != nil {
			t.Fatalf("diff record %+v: %v", r, err)
		}
	}
	if !reflect.DeepEqual(replayed.Encode(), done.Encode()) {
		t.Fatalf("diff does not lead to the completed image:\n got %s\nwant %s", replayed.Encode(), done.Encode())
	}
}
