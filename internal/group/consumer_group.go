package group

// The consumer group protocol (KIP-848) beside the classic one: a group is
// either, never both. A consumer group's members heartbeat with
// ConsumerGroupHeartbeat; the coordinator keeps the group epoch (bumped by
// every change of membership, subscription or subscribed topic metadata),
// computes the target assignment at that epoch with a server-side
// assignor, and moves each member towards its target by incremental
// reconciliation (reconcile.go). Offsets are shared with the classic
// protocol: a consumer group's offsets live in the same group entry.

import (
	"regexp"
	"slices"
	"sort"
)

// TopicInfo is what the coordinator needs of a topic: its id (assignments
// name topics by id) and its partition count.
type TopicInfo struct {
	ID         [16]byte
	Partitions int32
}

// consumerGroup is the state of a group using the consumer protocol.
type consumerGroup struct {
	epoch           int32 // the group epoch
	assignmentEpoch int32 // the epoch of target
	assignor        string
	members         map[string]*consumerMember
	static          map[string]string // instance id -> member id
	target          map[string]assignment
	// topics is the subscribed topics' partition counts the target was
	// computed from; a change bumps the group epoch.
	topics map[string]int32
}

// consumerMember is one member of a consumer group.
type consumerMember struct {
	id, instanceID, rackID string
	clientID, clientHost   string
	subscribedNames        []string
	regex                  string
	rebalanceTimeoutMs     int64
	assignor               string // the member's ServerAssignor, "" for the default
	memberAssignment

	deadline       int64 // session expiry
	revokeDeadline int64 // while revoking: when the member is fenced
	left           bool  // a static member that left with epoch -2
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{members: map[string]*consumerMember{}, static: map[string]string{}, target: map[string]assignment{}, topics: map[string]int32{}}
}

// memberIDs lists the members in id order, for deterministic iteration.
func (cg *consumerGroup) memberIDs() []string {
	ids := make([]string, 0, len(cg.members))
	for id := range cg.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// heldByOthers reports whether a member other than id holds a partition,
// assigned or pending revocation.
func (cg *consumerGroup) heldByOthers(id string) func(string, int32) bool {
	return func(topic string, p int32) bool {
		for oid, m := range cg.members {
			if oid != id && (m.assigned.has(topic, p) || m.revoking.has(topic, p)) {
				return true
			}
		}
		return false
	}
}

func (cg *consumerGroup) removeMember(m *consumerMember) {
	delete(cg.members, m.id)
	delete(cg.target, m.id)
	if m.instanceID != "" && cg.static[m.instanceID] == m.id {
		delete(cg.static, m.instanceID)
	}
}

// stateName is the group's state as ConsumerGroupDescribe and ListGroups
// report it.
func (cg *consumerGroup) stateName() string {
	if len(cg.members) == 0 {
		return "Empty"
	}
	if cg.assignmentEpoch < cg.epoch {
		return "Assigning"
	}
	for _, m := range cg.members {
		if m.epoch != cg.assignmentEpoch || m.state != memberStable {
			return "Reconciling"
		}
	}
	return "Stable"
}

// maxRegexBytes bounds a subscription regex.
const maxRegexBytes = 1024

// compileRegex compiles a subscription regex as the broker resolves it:
// RE2 syntax, matched against whole topic names.
func compileRegex(expr string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + expr + ")$")
}

// subscription resolves a member's subscribed topics against topics: its
// names that exist and every topic its regex matches.
func (m *consumerMember) subscription(topics map[string]TopicInfo, re *regexp.Regexp) []string {
	var out []string
	for _, t := range m.subscribedNames {
		if _, ok := topics[t]; ok {
			out = append(out, t)
		}
	}
	if re != nil {
		for t := range topics {
			if re.MatchString(t) && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}

// chooseAssignor picks the assignor for the group: the one the members
// ask for most (ties to the earlier in the configured list), else the
// first configured.
func chooseAssignor(configured []string, members map[string]*consumerMember) string {
	votes := map[string]int{}
	for _, m := range members {
		if m.assignor != "" {
			votes[m.assignor]++
		}
	}
	best := configured[0]
	for _, a := range configured {
		if votes[a] > votes[best] {
			best = a
		}
	}
	return best
}
