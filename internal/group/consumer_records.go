package group

// The records of a consumer group (KIP-848) in __consumer_offsets. A
// consumer group is stored as one record under key version 3, the number
// Kafka gives a consumer group's metadata key, holding the whole group:
// its epochs, its members with their subscriptions and reconciliation
// state, and the target assignment. Kafka spreads the same state over
// several record types (member metadata, target assignment, current
// assignment); one record per group keeps each write atomic, and
// compaction keeps the latest. The value is Weir's own (JSON, with a
// version), so tools that decode Kafka's consumer group values do not
// read it; offsets keep Kafka's format.

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
)

const consumerGroupKeyVersion = 3

// consumerGroupValueVersion is the version of the stored value.
const consumerGroupValueVersion = 1

func consumerGroupKey(group string) []byte {
	var dst []byte
	dst = kbin.AppendInt16(dst, consumerGroupKeyVersion)
	return kbin.AppendString(dst, group)
}

type storedConsumerGroup struct {
	Version         int                    `json:"version"`
	Epoch           int32                  `json:"epoch"`
	AssignmentEpoch int32                  `json:"assignment_epoch"`
	Assignor        string                 `json:"assignor,omitempty"`
	Topics          map[string]int32       `json:"topics,omitempty"`
	StateSinceMs    int64                  `json:"state_since_ms"`
	Members         []storedConsumerMember `json:"members"`
	Target          map[string]assignment  `json:"target,omitempty"`
}

type storedConsumerMember struct {
	ID                 string     `json:"id"`
	InstanceID         string     `json:"instance_id,omitempty"`
	RackID             string     `json:"rack_id,omitempty"`
	ClientID           string     `json:"client_id"`
	ClientHost         string     `json:"client_host"`
	SubscribedNames    []string   `json:"subscribed_names,omitempty"`
	Regex              string     `json:"regex,omitempty"`
	RebalanceTimeoutMs int64      `json:"rebalance_timeout_ms"`
	Assignor           string     `json:"assignor,omitempty"`
	Epoch              int32      `json:"epoch"`
	PrevEpoch          int32      `json:"prev_epoch"`
	State              int8       `json:"state"`
	Assigned           assignment `json:"assigned,omitempty"`
	Revoking           assignment `json:"revoking,omitempty"`
	Left               bool       `json:"left,omitempty"`
}

func consumerGroupValue(g *group) []byte {
	cg := g.cg
	v := storedConsumerGroup{Version: consumerGroupValueVersion, Epoch: cg.epoch, AssignmentEpoch: cg.assignmentEpoch,
		Assignor: cg.assignor, Topics: cg.topics, StateSinceMs: g.stateSinceMs, Target: cg.target, Members: []storedConsumerMember{}}
	for _, id := range cg.memberIDs() {
		m := cg.members[id]
		v.Members = append(v.Members, storedConsumerMember{ID: m.id, InstanceID: m.instanceID, RackID: m.rackID,
			ClientID: m.clientID, ClientHost: m.clientHost, SubscribedNames: m.subscribedNames, Regex: m.regex,
			RebalanceTimeoutMs: m.rebalanceTimeoutMs, Assignor: m.assignor, Epoch: m.epoch, PrevEpoch: m.prevEpoch,
			State: int8(m.state), Assigned: m.assigned, Revoking: m.revoking, Left: m.left})
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("group: encoding consumer group %s: %v", g.id, err)) // plain data: cannot fail
	}
	return b
}

// storeConsumerGroup appends recs and, when g's state differs from what
// was last stored, its record; onDone (if not nil) runs once everything
// appended so far is durable or failed.
func (s *Shard) storeConsumerGroup(g *group, recs []Record, onDone func(nowMs int64, err error)) {
	if g.cg != nil {
		if v := consumerGroupValue(g); !bytes.Equal(v, g.cgStored) {
			g.cgStored = v
			recs = append(recs, Record{Key: consumerGroupKey(g.id), Value: v})
		}
	}
	if len(recs) > 0 {
		if onDone == nil {
			onDone = func(int64, error) {}
		}
		s.append(recs, onDone)
		return
	}
	if onDone != nil {
		s.afterAppends(func(nowMs int64) { onDone(nowMs, nil) })
	}
}

// afterAppends runs fn once every append made so far is done, at once if
// none is in flight: an answer that shows state waits for that state to be
// durable.
func (s *Shard) afterAppends(fn func(nowMs int64)) {
	if len(s.inflight) == 0 {
		fn(-1)
		return
	}
	last := s.inflight[len(s.inflight)-1]
	prev := last.onDone
	last.onDone = func(nowMs int64, err error) {
		prev(nowMs, err)
		fn(nowMs)
	}
}

func (s *Shard) replayConsumerGroup(key, value []byte) error {
	r := kbin.Reader{Src: key[2:]}
	id := r.String()
	if err := r.Complete(); err != nil {
		return fmt.Errorf("group: consumer group key: %w", err)
	}
	g := s.groups[id]
	if value == nil {
		if g != nil {
			g.cg, g.cgStored = nil, nil
			s.dropIfUnused(g)
		}
		return nil
	}
	var v storedConsumerGroup
	if err := json.Unmarshal(value, &v); err != nil {
		return fmt.Errorf("group %q: consumer group value: %w", id, err)
	}
	if v.Version != consumerGroupValueVersion {
		return fmt.Errorf("group %q: consumer group value version %d", id, v.Version)
	}
	if g == nil {
		g = newGroup(id, 0)
		s.groups[id] = g
	}
	g.protocolType, g.protocol, g.generation, g.leader = "", "", 0, ""
	g.members, g.order, g.static = map[string]*member{}, nil, map[string]string{}
	g.stateSinceMs = v.StateSinceMs
	cg := newConsumerGroup()
	cg.epoch, cg.assignmentEpoch, cg.assignor = v.Epoch, v.AssignmentEpoch, v.Assignor
	if v.Topics != nil {
		cg.topics = v.Topics
	}
	if v.Target != nil {
		cg.target = v.Target
	}
	for _, sm := range v.Members {
		m := &consumerMember{id: sm.ID, instanceID: sm.InstanceID, rackID: sm.RackID, clientID: sm.ClientID,
			clientHost: sm.ClientHost, subscribedNames: sm.SubscribedNames, regex: sm.Regex,
			rebalanceTimeoutMs: sm.RebalanceTimeoutMs, assignor: sm.Assignor, left: sm.Left,
			memberAssignment: memberAssignment{epoch: sm.Epoch, prevEpoch: sm.PrevEpoch, state: memberState(sm.State),
				assigned: nonNil(sm.Assigned), revoking: nonNil(sm.Revoking)}}
		cg.members[m.id] = m
		if m.instanceID != "" {
			cg.static[m.instanceID] = m.id
		}
	}
	g.cg, g.cgStored = cg, value
	return nil
}

func nonNil(a assignment) assignment {
	if a == nil {
		return assignment{}
	}
	return a
}
