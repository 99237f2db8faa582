package group

import (
	"fmt"
	"testing"
)

// checkCovering fails unless every partition of every topic with
// subscribers is assigned to exactly one member subscribed to it.
func checkCovering(t *testing.T, in assignInput, out map[string]assignment) {
	t.Helper()
	seen := map[topicPartition]string{}
	for id, a := range out {
		for topic, ps := range a {
			subscribed := false
			for _, s := range in.subscriptions[id] {
				subscribed = subscribed || s == topic
			}
			if !subscribed {
				t.Fatalf("member %s got %s, which it does not subscribe to", id, topic)
			}
			for _, p := range ps {
				k := topicPartition{topic, p}
				if other, dup := seen[k]; dup {
					t.Fatalf("%s/%d assigned to both %s and %s", topic, p, other, id)
				}
				seen[k] = id
			}
		}
	}
	for topic, members := range subscribers(in) {
		for p := int32(0); p < in.partitions[topic]; p++ {
			if _, ok := seen[topicPartition{topic, p}]; !ok && len(members) > 0 {
				t.Fatalf("%s/%d assigned to no one", topic, p)
			}
		}
	}
}

func homogeneous(members int, topics map[string]int32) assignInput {
	in := assignInput{subscriptions: map[string][]string{}, partitions: topics}
	for i := 0; i < members; i++ {
		for topic := range topics {
			id := fmt.Sprintf("m%02d", i)
			in.subscriptions[id] = append(in.subscriptions[id], topic)
		}
	}
	return in
}

func TestUniformAssignorCoversEveryPartitionOnceWithin1OfBalance(t *testing.T) {
	for _, members := range []int{1, 2, 3, 5, 7, 13} {
		for _, parts := range []int32{1, 4, 6, 10, 31} {
			in := homogeneous(members, map[string]int32{"a": parts, "b": parts / 2})
			out := assignUniform(in)
			checkCovering(t, in, out)
			lo, hi := 1<<30, 0
			for _, a := range out {
				lo, hi = min(lo, a.size()), max(hi, a.size())
			}
			if hi-lo > 1 {
				t.Fatalf("%d members, %d partitions: loads from %d to %d", members, parts, lo, hi)
			}
		}
	}
}

func TestUniformAssignorMovesOnlyWhatANewMemberNeeds(t *testing.T) {
	in := homogeneous(2, map[string]int32{"a": 12})
	first := assignUniform(in)
	in3 := homogeneous(3, map[string]int32{"a": 12})
	in3.previous = first
	second := assignUniform(in3)
	checkCovering(t, in3, second)
	moved := 0
	for _, id := range []string{"m00", "m01"} {
		moved += first[id].minus(second[id]).size()
	}
	if moved != 4 || second["m02"].size() != 4 {
		t.Fatalf("a third member of 12 partitions should take 4, moved from the others: moved %d, it has %v", moved, second["m02"])
	}
}

func TestUniformAssignorGivesEachMemberOnlyItsTopics(t *testing.T) {
	in := assignInput{
		subscriptions: map[string][]string{"x": {"a"}, "y": {"a", "b"}, "z": {"b"}},
		partitions:    map[string]int32{"a": 4, "b": 4, "missing": 0},
	}
	out := assignUniform(in)
	checkCovering(t, in, out)
	for id, a := range out {
		if a.size() < 2 || a.size() > 3 {
			t.Fatalf("member %s has %d of 8 partitions over 3 members: %v", id, a.size(), out)
		}
	}
}

func TestRangeAssignorGivesContiguousBlocksFirstMembersTakingTheRemainder(t *testing.T) {
	in := homogeneous(3, map[string]int32{"a": 7})
	out := assignRange(in)
	checkCovering(t, in, out)
	want := map[string][]int32{"m00": {0, 1, 2}, "m01": {3, 4}, "m02": {5, 6}}
	for id, ps := range want {
		if fmt.Sprint(out[id]["a"]) != fmt.Sprint(ps) {
			t.Fatalf("range over 7 partitions, 3 members: %s got %v, want %v", id, out[id]["a"], ps)
		}
	}
}
