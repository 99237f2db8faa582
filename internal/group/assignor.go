package group

// Server-side assignors of the consumer group protocol (KIP-848): the
// coordinator, not a member, computes every member's target assignment.
// Both are pure functions of the members' subscriptions, the subscribed
// topics' partition counts and (for uniform) the previous target.
//
// uniform, the default, balances partitions over the members subscribed to
// them and keeps each partition where it was whenever balance allows, so a
// member joining or leaving moves as few partitions as it can. range gives
// each member of a topic a contiguous block of its partitions, as the
// client-side range assignor does, the first members in member id order
// taking one more when the count does not divide.

import (
	"slices"
	"sort"
)

// Assignor names, as clients send them in ServerAssignor and
// group.consumer.assignors lists them.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

// assignment is a set of partitions by topic name, each list sorted.
type assignment map[string][]int32

// assignInput is what an assignor sees: each member's subscribed topics
// (resolved: names and regex matches that exist), each topic's partition
// count, and the previous target.
type assignInput struct {
	subscriptions map[string][]string // member id -> topics
	partitions    map[string]int32    // topic -> partition count
	previous      map[string]assignment
}

// assign runs the named assignor; an unknown name runs uniform.
func assign(name string, in assignInput) map[string]assignment {
	if name == AssignorRange {
		return assignRange(in)
	}
	return assignUniform(in)
}

func sortedMembers(in assignInput) []string {
	ids := make([]string, 0, len(in.subscriptions))
	for id := range in.subscriptions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// subscribers lists, for every topic that exists, the members subscribed
// to it in member id order.
func subscribers(in assignInput) map[string][]string {
	out := map[string][]string{}
	for _, id := range sortedMembers(in) {
		for _, t := range in.subscriptions[id] {
			if in.partitions[t] > 0 && !slices.Contains(out[t], id) {
				out[t] = append(out[t], id)
			}
		}
	}
	return out
}

func assignRange(in assignInput) map[string]assignment {
	out := map[string]assignment{}
	for _, id := range sortedMembers(in) {
		out[id] = assignment{}
	}
	for topic, members := range subscribers(in) {
		n := int(in.partitions[topic])
		per, extra := n/len(members), n%len(members)
		next := 0
		for i, id := range members {
			count := per
			if i < extra {
				count++
			}
			for p := next; p < next+count; p++ {
				out[id][topic] = append(out[id][topic], int32(p))
			}
			next += count
		}
	}
	return out
}

func assignUniform(in assignInput) map[string]assignment {
	subs := subscribers(in)
	members := sortedMembers(in)
	owner := map[topicPartition]string{}
	load := map[string]int{}
	subscribed := func(id, topic string) bool { return slices.Contains(subs[topic], id) }

	// Keep every partition with its previous owner while that member is
	// still subscribed.
	for _, id := range members {
		for topic, ps := range in.previous[id] {
			if !subscribed(id, topic) {
				continue
			}
			for _, p := range ps {
				k := topicPartition{topic, p}
				if p < in.partitions[topic] && owner[k] == "" {
					owner[k] = id
					load[id]++
				}
			}
		}
	}
	// Every other partition goes to its least-loaded subscriber.
	topics := make([]string, 0, len(subs))
	for t := range subs {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	least := func(cands []string, except string) string {
		best := ""
		for _, id := range cands {
			if id != except && (best == "" || load[id] < load[best]) {
				best = id
			}
		}
		return best
	}
	for _, t := range topics {
		for p := int32(0); p < in.partitions[t]; p++ {
			k := topicPartition{t, p}
			if owner[k] == "" {
				id := least(subs[t], "")
				owner[k] = id
				load[id]++
			}
		}
	}
	// Then move partitions from the most loaded members to less loaded
	// subscribers until no move narrows the spread: each move lowers the
	// sum of squared loads, so this ends.
	all := make([]topicPartition, 0, len(owner))
	for k := range owner {
		all = append(all, k)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].topic != all[j].topic {
			return all[i].topic < all[j].topic
		}
		return all[i].partition > all[j].partition // move high partitions first
	})
	for moved := true; moved; {
		moved = false
		for _, k := range all {
			from := owner[k]
			to := least(subs[k.topic], from)
			if to != "" && load[from] > load[to]+1 {
				owner[k] = to
				load[from]--
				load[to]++
				moved = true
			}
		}
	}
	out := map[string]assignment{}
	for _, id := range members {
		out[id] = assignment{}
	}
	for _, k := range all {
		a := out[owner[k]]
		a[k.topic] = append(a[k.topic], k.partition)
	}
	for _, a := range out {
		for t := range a {
			slices.Sort(a[t])
		}
	}
	return out
}
