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
// and then every fenced broker leaves the ISR of every partition, unless
// it is the last member (KIP-966 keeps the last one, so the partition can
// come back with it), and a leader that may no longer lead (see mayKeep)
// or has left the ISR loses the leadership: it goes to the first
// remaining ISR member that may lead, else -1, with a new leader epoch.
// A partition with no leader gets the first ISR member that may lead. Internal topics are no exception: their coordinator
// shards follow the leadership of their partitions.
//
// This is the one place a broker leaves the ISRs for being fenced, for
// both ways of being fenced: its session expired, or it registered again
// (a new incarnation starts fenced, metadata.Image.Apply). A broker that
// registers again may have lost its log, or the tail it had not fsynced
// (a replaced disk, a crash), so it counts as in sync nowhere until the
// leader's normal expansion takes it back once it has caught up
// (internal/broker/isr.go), as Kafka's controller does on fencing. The
// brokers fenced in the image before this plan leave first, those fenced
// by it after, each step stopping short of emptying the ISR: so when a
// broker registers again as the leader's session expires, the old leader
// is kept as the last member, not the broker that may have come back
// empty. A broker fenced in the image is unfenced (above) only by a plan
// that also makes it leave, so it never serves again while still counted
// in an ISR it was in before it registered again.
//
// The records are planned here, on the active controller, and committed
// like any other change, so every node applies the same ISRs and epochs.
// The leader-epoch bump metadata.Image.Apply makes when a new incarnation
// registers stays: it covers the partitions the broker leads between its
// registration and this plan, and metadata logs written before this plan
// moved the broker out replay with it.
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
	// fencedBefore: fenced in the image this plan starts from (a new
	// registration, or a session that expired earlier).
	// mayKeep: a leader keeps its partitions while registered, not
	// shutting down, and either unfenced or fenced only because it has
	// just registered and is catching up (its session is alive) — which
	// it can only do where, fenced before, it is the last ISR member
	// left: its registration gave them a new leader epoch
	// (metadata.Image.Apply).
	// mayTake: only unfenced brokers are given leaderships.
	fencedBefore := func(id int32) bool {
		br, ok := im.Brokers[id]
		return !ok || br.Fenced
	}
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
			if rec, ok := electLeader(p, fencedBefore, mayKeep, mayTake, unclean != nil && unclean(t)); ok {
				rec.TopicID, rec.Index = t.ID, int32(i)
				recs = append(recs, metadata.Record{Partition: &rec})
			}
		}
	}
	return recs
}

// electLeader is the change one partition needs, if any: the members
// leftEarlier says (nil: none) leave the ISR, then those that may not
// keep their place, each step unless it would empty the ISR.
// With unclean set (unclean.leader.election.enable) and no ISR member
// able to lead, a live replica outside the ISR is elected and becomes the
// whole ISR: the partition is available again, and the writes only the
// ISR held are lost, as the setting says.
func electLeader(p metadata.Partition, leftEarlier, mayKeep, mayTake func(int32) bool, unclean bool) (metadata.PartitionRecord, bool) {
	isr := slices.Clone(p.ISR)
	if leftEarlier != nil {
		isr = leaveISR(isr, leftEarlier)
	}
	isr = leaveISR(isr, func(id int32) bool { return !mayKeep(id) })
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

// leaveISR removes the members gone says from isr, unless none would
// remain: the ISR is never emptied (KIP-966).
func leaveISR(isr []int32, gone func(int32) bool) []int32 {
	kept := slices.DeleteFunc(slices.Clone(isr), gone)
	if len(kept) == 0 {
		return isr
	}
	return kept
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
