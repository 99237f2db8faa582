package metadata

import (
	"reflect"
	"testing"
)

func sampleImage(t *testing.T) *Image {
	t.Helper()
	im := NewImage()
	a, b := NewTopicID(), NewTopicID()
	v := "compact"
	for _, r := range []Record{
		{Topic: &TopicRecord{Name: "a", ID: a, Configs: map[string]string{"retention.ms": "1"}}},
		{Partition: &PartitionRecord{TopicID: a, Index: 0, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}},
		{Partition: &PartitionRecord{TopicID: a, Index: 1, Leader: 2, Replicas: []int32{2}, ISR: []int32{2}}},
		{Topic: &TopicRecord{Name: "b", ID: b, Internal: true}},
		{Config: &ConfigRecord{TopicID: b, Name: "cleanup.policy", Value: &v}},
		{ProducerIDs: &ProducerIDsRecord{Start: 0, Size: 1000}},
		{Broker: &BrokerRecord{NodeID: 1, Incarnation: "aa", Host: "h1", Port: 9092}},
		{Broker: &BrokerRecord{NodeID: 2, Incarnation: "bb", Host: "h2", Port: 9093}},
	} {
		if err := im.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	im.Offset = 41
	return im
}

func TestImageSurvivesEncodeAndDecode(t *testing.T) {
	im := sampleImage(t)
	got, err := DecodeImage(im.Encode(), im.Offset)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, im) {
		t.Fatalf("decoded image differs:\n got %+v\nwant %+v", got, im)
	}
}

func TestApplyBatchIsAllOrNothing(t *testing.T) {
	im := sampleImage(t)
	before := im.Clone()
	id := NewTopicID()
	err := im.ApplyBatch([]Record{
		{Topic: &TopicRecord{Name: "c", ID: id}},
		{Topic: &TopicRecord{Name: "a", ID: NewTopicID()}}, // already exists
	})
	if err == nil {
		t.Fatal("a batch with a conflicting record applied")
	}
	if !reflect.DeepEqual(im, before) {
		t.Fatal("a rejected batch changed the image")
	}
	if err := im.ApplyBatch([]Record{{Topic: &TopicRecord{Name: "c", ID: id}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := im.TopicByID(id); !ok || im.Offset != before.Offset {
		t.Fatal("an accepted batch is not in the image, or moved its offset")
	}
}

func TestDiffRebuildsTheNewImage(t *testing.T) {
	old := sampleImage(t)
	next := old.Clone()
	v := "2"
	c := NewTopicID()
	for _, r := range []Record{
		{RemoveTopic: &RemoveTopicRecord{TopicID: old.Topics["b"].ID}},
		{Config: &ConfigRecord{TopicID: old.Topics["a"].ID, Name: "retention.ms", Value: &v}},
		{Partition: &PartitionRecord{TopicID: old.Topics["a"].ID, Index: 2, Leader: 3, Replicas: []int32{3}, ISR: []int32{3}}},
		{Topic: &TopicRecord{Name: "b", ID: c}},
		{Partition: &PartitionRecord{TopicID: c, Index: 0, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}},
		{ProducerIDs: &ProducerIDsRecord{Start: 1000, Size: 1000}},
		{Partition: &PartitionRecord{TopicID: old.Topics["a"].ID, Index: 1, Leader: -1, LeaderEpoch: 1, Replicas: []int32{2}, ISR: []int32{2}}},
		{BrokerChange: &BrokerChangeRecord{NodeID: 1, Epoch: old.Brokers[1].Epoch, Fenced: false}},
		{Broker: &BrokerRecord{NodeID: 2, Incarnation: "b2", Host: "h2", Port: 9093}},
		{BrokerChange: &BrokerChangeRecord{NodeID: 2, Epoch: old.Offset + 1, Fenced: false}},
	} {
		if err := next.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	replayed := old.Clone()
	for _, r := range Diff(old, next) {
		if err := replayed.Apply(r); err != nil {
			t.Fatalf("diff record %+v does not apply: %v", r, err)
		}
	}
	if !reflect.DeepEqual(replayed.Encode(), next.Encode()) {
		t.Fatalf("diff does not lead to the new image:\n got %s\nwant %s", replayed.Encode(), next.Encode())
	}
}

// FuzzDecodeImage: a snapshot image from the wire or the disk is decoded
// or refused without a panic, and a decoded image encodes to a form that
// decodes to the same image.
func FuzzDecodeImage(f *testing.F) {
	im := NewImage()
	f.Add(im.Encode())
	id := NewTopicID()
	_ = im.Apply(Record{Topic: &TopicRecord{Name: "a", ID: id, Configs: map[string]string{"k": "v"}}})
	_ = im.Apply(Record{Partition: &PartitionRecord{TopicID: id, Replicas: []int32{1}, ISR: []int32{1}}})
	f.Add(im.Encode())
	f.Add([]byte(`{"topics":[null]}`))
	f.Add([]byte(`{"topics":[{"Name":"a"},{"Name":"a"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := DecodeImage(b, 7)
		if err != nil {
			return
		}
		again, err := DecodeImage(im.Encode(), 7)
		if err != nil {
			t.Fatalf("re-encoded image does not decode: %v", err)
		}
		if string(again.Encode()) != string(im.Encode()) {
			t.Fatalf("image changed across encode and decode:\n%s\n%s", im.Encode(), again.Encode())
		}
	})
}

func TestBrokerReRegistrationReplacesTheEarlierIncarnation(t *testing.T) {
	im := sampleImage(t)
	old := im.Clone()
	if err := im.Apply(Record{Broker: &BrokerRecord{NodeID: 2, Incarnation: "cc", Host: "h2b", Port: 9094}}); err != nil {
		t.Fatal(err)
	}
	if got := im.Brokers[2]; got != (Broker{NodeID: 2, Incarnation: "cc", Host: "h2b", Port: 9094, Epoch: im.Offset + 1, Fenced: true}) || len(im.Brokers) != 2 {
		t.Fatalf("brokers after re-registration: %+v", im.Brokers)
	}
	if old.Brokers[2].Incarnation != "bb" {
		t.Fatal("a clone shares its brokers with the image it was cloned from")
	}
	// The diff tells of the new registration, and of each partition the
	// node leads, which its new incarnation leads at a new epoch.
	recs := Diff(old, im)
	var broker *BrokerRecord
	for _, r := range recs {
		switch {
		case r.Broker != nil:
			broker = r.Broker
		case r.Partition != nil:
			top, _ := old.TopicByID(r.Partition.TopicID)
			if top == nil || r.Partition.Leader != 2 || r.Partition.LeaderEpoch != top.Partitions[r.Partition.Index].LeaderEpoch+1 {
				t.Fatalf("diff of a re-registration changes partition %+v", *r.Partition)
			}
		default:
			t.Fatalf("diff of a re-registration: %+v", r)
		}
	}
	if broker == nil || broker.Incarnation != "cc" {
		t.Fatalf("diff of a re-registration: %+v", recs)
	}
	if err := im.Apply(Record{Broker: &BrokerRecord{NodeID: 3, Incarnation: "", Host: "h", Port: 1}}); err == nil {
		t.Fatal("a registration without an incarnation was accepted")
	}
}

func TestRegistrationStartsFencedAtTheOffsetOfItsEntry(t *testing.T) {
	im := sampleImage(t)
	if err := im.ApplyBatchAt([]Record{{Broker: &BrokerRecord{NodeID: 3, Incarnation: "c", Host: "h3", Port: 1}}}, 57); err != nil {
		t.Fatal(err)
	}
	if br := im.Brokers[3]; !br.Fenced || br.Epoch != 57 || im.Offset != 57 {
		t.Fatalf("registration applied at 57: %+v, image offset %d; want fenced at epoch 57", br, im.Offset)
	}
	if ids := im.UnfencedBrokerIDs(); len(ids) != 0 {
		t.Fatalf("unfenced brokers %v right after registration; want none", ids)
	}
	if err := im.Apply(Record{BrokerChange: &BrokerChangeRecord{NodeID: 3, Epoch: 56}}); err == nil {
		t.Fatal("a change for another registration of the node applied")
	}
	if err := im.Apply(Record{BrokerChange: &BrokerChangeRecord{NodeID: 3, Epoch: 57}}); err != nil || !im.Unfenced(3) {
		t.Fatalf("unfencing: %v, broker %+v", err, im.Brokers[3])
	}
}

func TestPartitionChangeNeedsAHigherEpochForANewLeader(t *testing.T) {
	im := sampleImage(t)
	a := im.Topics["a"].ID
	for _, tc := range []struct {
		rec PartitionRecord
		ok  bool
	}{
		{PartitionRecord{TopicID: a, Index: 0, Leader: -1, LeaderEpoch: 0, Replicas: []int32{1}, ISR: []int32{1}}, false},
		{PartitionRecord{TopicID: a, Index: 0, Leader: 2, LeaderEpoch: 1, Replicas: []int32{1}, ISR: []int32{2}}, false},
		{PartitionRecord{TopicID: a, Index: 0, Leader: 1, LeaderEpoch: 1, Replicas: []int32{1}, ISR: []int32{}}, false},
		{PartitionRecord{TopicID: a, Index: 0, Leader: -1, LeaderEpoch: 1, Replicas: []int32{1}, ISR: []int32{1}}, true},
		{PartitionRecord{TopicID: a, Index: 0, Leader: 1, LeaderEpoch: 0, Replicas: []int32{1}, ISR: []int32{1}}, false},
		{PartitionRecord{TopicID: a, Index: 0, Leader: 1, LeaderEpoch: 2, Replicas: []int32{1}, ISR: []int32{1}}, true},
	} {
		err := im.Apply(Record{Partition: &tc.rec})
		if (err == nil) != tc.ok {
			t.Fatalf("change %+v: %v; want accepted %v", tc.rec, err, tc.ok)
		}
	}
	if p := im.Topics["a"].Partitions[0]; p.Leader != 1 || p.LeaderEpoch != 2 || len(im.Topics["a"].Partitions) != 2 {
		t.Fatalf("partition after the changes: %+v", p)
	}
}

func TestSnapshotWithoutBrokerStateReadsAsUnfenced(t *testing.T) {
	im, err := DecodeImage([]byte(`{"topics":[],"nextProducerId":0,"brokers":[{"nodeId":1,"incarnation":"a","host":"h","port":1}]}`), 9)
	if err != nil {
		t.Fatal(err)
	}
	if !im.Unfenced(1) {
		t.Fatalf("broker of an older snapshot: %+v; want unfenced", im.Brokers[1])
	}
}
