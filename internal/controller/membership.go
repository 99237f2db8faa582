package controller

// The broker lifecycle of KIP-631, decided on the active controller:
// which registered brokers are alive (heartbeats within
// broker.session.timeout.ms), which are fenced, and who leads each
// partition as a result. The decisions are records planned against the
// image (planMembership, a pure function of the image and the liveness
// table) and committed through the quorum like any other change, so every
// node applies the same fencing and the same leaders.
//
// The liveness table is memory of the active controller only: a node that
// becomes the controller starts it empty, and a registration's session
// counts from when the controller first sees it (at its first tick for
// the brokers it inherits), so no broker is fenced for heartbeats it sent
// to the previous controller, nor for the time it took to register.

import (
	"slices"
	"time"

	"github.com/weir-broker/weir/internal/metadata"
)

// session is what the active controller knows of one broker from its
// heartbeats.
type session struct {
	// lastHeard is when the last heartbeat arrived, or when the
	// registration was first seen while none has.
	lastHeard time.Time
	heard     bool  // a heartbeat of this registration arrived
	epoch     int64 // broker epoch of the registration
	applied   int64 // metadata offset the broker had applied
	wantFence bool
	// wantShutdown: the broker asked for a controlled shutdown.
	wantShutdown bool
}

// liveness is the active controller's table of broker sessions. It is a
// plain value: callers pass the clock in and guard it themselves.
type liveness struct {
	sessionTimeout time.Duration
	sessions       map[int32]*session
}

func newLiveness(sessionTimeout time.Duration) *liveness {
	return &liveness{sessionTimeout: sessionTimeout, sessions: make(map[int32]*session)}
}

// heard records a heartbeat.
func (l *liveness) heard(now time.Time, node int32, epoch, applied int64, wantFence, wantShutdown bool) {
	l.sessions[node] = &session{lastHeard: now, heard: true, epoch: epoch, applied: applied, wantFence: wantFence, wantShutdown: wantShutdown}
}

// state is what planMembership needs to know of one registered broker.
// A registration seen for the first time starts its session now.
func (l *liveness) state(now time.Time, br metadata.Broker) brokerLiveness {
	s := l.sessions[br.NodeID]
	if s == nil || s.epoch != br.Epoch {
		s = &session{lastHeard: now, epoch: br.Epoch}
		l.sessions[br.NodeID] = s
	}
	return brokerLiveness{
		alive:        now.Sub(s.lastHeard) < l.sessionTimeout,
		heard:        s.heard,
		applied:      s.applied,
		wantFence:    s.wantFence,
		wantShutdown: s.wantShutdown,
	}
}

// brokerLiveness is one broker's liveness as of a moment.
type brokerLiveness struct {
	alive        bool  // its session has not expired
	heard        bool  // a heartbeat of this registration arrived
	applied      int64 // metadata offset it had applied then
	wantFence    bool
	wantShutdown bool
}

// planMembership returns the records that bring the image in line with
// the brokers' liveness, or none:
//
//   - an unfenced broker whose session expired is fenced;
//   - a broker asking for a controlled shutdown is fenced and marked so;
//   - a fenced broker that heartbeats, has applied the metadata up to its
//     registration (its epoch) and asks neither to stay fenced nor to
//     shut down is unfenced;
//
// and then every partition whose leader may no longer lead (see mayKeep)
// loses it: the leader becomes the first other ISR member that may lead,
// else -1, with a new leader epoch, and the broker leaves the ISR unless
// it is the last member (KIP-966 keeps the last one, so the partition can
// come back with it). A partition with no leader gets the first ISR member
// that may lead. Internal topics are no exception: their coordinator
// shards follow the leadership of their partitions.
func planMembership(im *metadata.Image, live func(metadata.Broker) brokerLiveness, unclean func(*metadata.Topic) bool) []metadata.Record {
	var recs []metadata.Record
	brokers := make(map[int32]metadata.Broker, len(im.Brokers))
	lv := make(map[int32]brokerLiveness, len(im.Brokers))
	for _, id := range im.BrokerIDs() {
		br := im.Brokers[id]
		l := live(br)
		lv[id] = l
		next := br
		switch {
		case l.heard && l.wantShutdown && !br.ControlledShutdown:
			next.Fenced, next.ControlledShutdown = true, true
		case !br.Fenced && !l.alive:
			next.Fenced = true
		case br.Fenced && !br.ControlledShutdown && l.alive && l.heard && l.applied >= br.Epoch && !l.wantFence && !l.wantShutdown:
			next.Fenced = false
		}
		if next != br {
			recs = append(recs, metadata.Record{BrokerChange: &metadata.BrokerChangeRecord{
				NodeID: id, Epoch: br.Epoch, Fenced: next.Fenced, ControlledShutdown: next.ControlledShutdown,
			}})
		}
		brokers[id] = next
	}
	// mayKeep: a leader keeps its partitions while registered, not
	// shutting down, and either unfenced or fenced only because it has
	// just registered and is catching up (its session is alive); its
	// registration gave them a new leader epoch (metadata.Image.Apply).
	// mayTake: only unfenced brokers are given leaderships.
	mayKeep := func(id int32) bool {
		br, ok := brokers[id]
		return ok && !br.ControlledShutdown && (!br.Fenced || lv[id].alive)
	}
	mayTake := func(id int32) bool {
		br, ok := brokers[id]
		return ok && !br.Fenced && !br.ControlledShutdown
	}
	for _, name := range im.TopicNames() {
		t := im.Topics[name]
		for i, p := range t.Partitions {
			if rec, ok := electLeader(p, mayKeep, mayTake, unclean != nil && unclean(t)); ok {
				rec.TopicID, rec.Index = t.ID, int32(i)
				recs = append(recs, metadata.Record{Partition: &rec})
			}
		}
	}
	return recs
}

// electLeader is the change one partition needs, if any.
// With unclean set (unclean.leader.election.enable) and no ISR member
// able to lead, a live replica outside the ISR is elected and becomes the
// whole ISR: the partition is available again, and the writes only the
// ISR held are lost, as the setting says.
func electLeader(p metadata.Partition, mayKeep, mayTake func(int32) bool, unclean bool) (metadata.PartitionRecord, bool) {
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(id int32) bool { return !mayKeep(id) })
	if len(isr) == 0 {
		isr = slices.Clone(p.ISR)
	}
	leader := p.Leader
	if leader != -1 && (!mayKeep(leader) || !slices.Contains(isr, leader)) {
		leader = -1
	}
	if leader == -1 {
		for _, id := range isr {
			if mayTake(id) {
				leader = id
				break
			}
		}
	}
	if leader == -1 && unclean {
		for _, id := range p.Replicas {
			if mayTake(id) {
				leader, isr = id, []int32{id}
				break
			}
		}
	}
	return leaderChange(p, leader, isr)
}

// leaderChange is the record that gives p leader and isr, or false when
// it has them already. Every election makes its record here, automatic
// (electLeader) or requested (elect.go): a new leader comes with the next
// leader epoch (KIP-101), and any change with the next partition epoch
// (KIP-497).
func leaderChange(p metadata.Partition, leader int32, isr []int32) (metadata.PartitionRecord, bool) {
	if leader == p.Leader && slices.Equal(isr, p.ISR) {
		return metadata.PartitionRecord{}, false
	}
	epoch := p.LeaderEpoch
	if leader != p.Leader {
		epoch++
	}
	return metadata.PartitionRecord{Leader: leader, LeaderEpoch: epoch, Replicas: p.Replicas, ISR: isr, PartitionEpoch: p.PartitionEpoch + 1}, true
}

// leadsAny reports whether node leads a partition.
func leadsAny(im *metadata.Image, node int32) bool {
	for _, t := range im.Topics {
		for _, p := range t.Partitions {
			if p.Leader == node {
				return true
			}
		}
	}
	return false
}
