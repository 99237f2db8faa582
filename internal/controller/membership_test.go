package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/metadata"
)

// membershipFixture is an image of three unfenced brokers, a topic "t"
// whose partition i is led by broker i+1 alone, a partition replicated on
// brokers 1 and 2, and an internal topic led by broker 1; with the active
// controller's liveness table, started at t0.
type membershipFixture struct {
	t *testing.T
	// unclean, if set, says which topics may elect outside the ISR.
	unclean func(*metadata.Topic) bool
	im      *metadata.Image
	live    *liveness
	t0      time.Time
}

const testSession = 9 * time.Second

func newMembershipFixture(t *testing.T) *membershipFixture {
	t.Helper()
	f := &membershipFixture{t: t, im: metadata.NewImage(), t0: time.Unix(1000, 0)}
	f.live = newLiveness(testSession)
	tid, iid := metadata.NewTopicID(), metadata.NewTopicID()
	var recs []metadata.Record
	for id := int32(1); id <= 3; id++ {
		recs = append(recs, metadata.Record{Broker: &metadata.BrokerRecord{NodeID: id, Incarnation: "a", Host: "h", Port: 9000 + id}})
	}
	f.apply(recs)
	recs = nil
	for id := int32(1); id <= 3; id++ {
		recs = append(recs, metadata.Record{BrokerChange: &metadata.BrokerChangeRecord{NodeID: id, Epoch: f.im.Brokers[id].Epoch}})
	}
	recs = append(recs, metadata.Record{Topic: &metadata.TopicRecord{Name: "t", ID: tid}})
	for i := int32(0); i < 3; i++ {
		recs = append(recs, metadata.Record{Partition: &metadata.PartitionRecord{TopicID: tid, Index: i, Leader: i + 1, Replicas: []int32{i + 1}, ISR: []int32{i + 1}}})
	}
	recs = append(recs,
		metadata.Record{Partition: &metadata.PartitionRecord{TopicID: tid, Index: 3, Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}},
		metadata.Record{Topic: &metadata.TopicRecord{Name: "__consumer_offsets", ID: iid, Internal: true}},
		metadata.Record{Partition: &metadata.PartitionRecord{TopicID: iid, Index: 0, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}},
	)
	f.apply(recs)
	f.plan(0) // the controller's first look: every session starts at t0
	return f
}

// apply applies recs as the next entry of the metadata log.
func (f *membershipFixture) apply(recs []metadata.Record) {
	f.t.Helper()
	if err := f.im.ApplyBatchAt(recs, f.im.Offset+1); err != nil {
		f.t.Fatalf("planned records do not apply: %v", err)
	}
}

// heartbeat records a heartbeat of broker id (its current registration)
// at t0+at, having applied the whole image.
func (f *membershipFixture) heartbeat(at time.Duration, id int32, wantShutdown bool) {
	f.live.heard(f.t0.Add(at), id, f.im.Brokers[id].Epoch, f.im.Offset, false, wantShutdown)
}

// plan plans at t0+at and applies what it plans.
func (f *membershipFixture) plan(at time.Duration) []metadata.Record {
	f.t.Helper()
	now := f.t0.Add(at)
	recs := planMembership(f.im, func(br metadata.Broker) brokerLiveness { return f.live.state(now, br) }, f.unclean)
	if len(recs) > 0 {
		f.apply(recs)
	}
	return recs
}

func (f *membershipFixture) partition(topic string, i int) metadata.Partition {
	return f.im.Topics[topic].Partitions[i]
}

func TestAnExpiredSessionFencesTheBrokerAndItsPartitionsLoseItAsLeader(t *testing.T) {
	f := newMembershipFixture(t)
	for at := time.Duration(0); at < 12*time.Second; at += 2 * time.Second {
		f.heartbeat(at, 2, false)
		f.heartbeat(at, 3, false)
		recs := f.plan(at)
		if at < testSession && len(recs) != 0 {
			t.Fatalf("at %v, within broker 1's first session, the controller planned %+v", at, recs)
		}
	}
	if br := f.im.Brokers[1]; !br.Fenced || br.ControlledShutdown {
		t.Fatalf("broker 1 silent for a session: %+v; want fenced", br)
	}
	if ids := f.im.UnfencedBrokerIDs(); !slices.Equal(ids, []int32{2, 3}) {
		t.Fatalf("unfenced brokers %v; want [2 3]", ids)
	}
	if p := f.partition("t", 0); p.Leader != -1 || p.LeaderEpoch != 1 || !slices.Equal(p.ISR, []int32{1}) {
		t.Fatalf("partition led by the fenced broker alone: %+v; want leader -1, epoch 1, ISR kept [1]", p)
	}
	if p := f.partition("t", 3); p.Leader != 2 || p.LeaderEpoch != 5 || !slices.Equal(p.ISR, []int32{2}) {
		t.Fatalf("partition with another ISR member: %+v; want leader 2 at epoch 5, ISR [2]", p)
	}
	if p := f.partition("t", 1); p.Leader != 2 || p.LeaderEpoch != 0 {
		t.Fatalf("partition of a live broker changed: %+v", p)
	}
	if p := f.partition("__consumer_offsets", 0); p.Leader != -1 || p.LeaderEpoch != 1 {
		t.Fatalf("internal partition of the fenced broker: %+v; want leader -1 at epoch 1, as any other", p)
	}
	if recs := f.plan(12 * time.Second); len(recs) != 0 {
		t.Fatalf("planned again after fencing: %+v", recs)
	}
}

func TestARestartedBrokerIsUnfencedOnceCaughtUpAndLeadsItsPartitionsAgain(t *testing.T) {
	f := newMembershipFixture(t)
	f.heartbeat(testSession, 2, false)
	f.heartbeat(testSession, 3, false)
	f.plan(testSession) // broker 1 fenced
	f.apply([]metadata.Record{{Broker: &metadata.BrokerRecord{NodeID: 1, Incarnation: "b", Host: "h", Port: 9001}}})
	epoch := f.im.Brokers[1].Epoch

	f.heartbeat(testSession+time.Second, 2, false)
	f.heartbeat(testSession+time.Second, 3, false)
	// Behind its registration: stays fenced.
	f.live.heard(f.t0.Add(testSession+time.Second), 1, epoch, epoch-1, false, false)
	if recs := f.plan(testSession + time.Second); len(recs) != 0 || !f.im.Brokers[1].Fenced {
		t.Fatalf("a broker that has not applied its registration: planned %+v", recs)
	}
	// Asking to stay fenced: stays fenced.
	f.live.heard(f.t0.Add(testSession+time.Second), 1, epoch, epoch, true, false)
	if recs := f.plan(testSession + time.Second); len(recs) != 0 {
		t.Fatalf("a broker that wants to stay fenced: planned %+v", recs)
	}
	f.live.heard(f.t0.Add(testSession+time.Second), 1, epoch, epoch, false, false)
	f.plan(testSession + time.Second)
	if !f.im.Unfenced(1) {
		t.Fatalf("caught-up broker: %+v; want unfenced", f.im.Brokers[1])
	}
	if p := f.partition("t", 0); p.Leader != 1 || p.LeaderEpoch != 2 || !slices.Equal(p.ISR, []int32{1}) {
		t.Fatalf("its leaderless partition: %+v; want led by 1 again at epoch 2", p)
	}
	if p := f.partition("t", 3); p.Leader != 2 || !slices.Equal(p.ISR, []int32{2}) {
		t.Fatalf("a partition it had left the ISR of: %+v; it rejoins only by replicating", p)
	}
}

// A broker that registers again (it restarted, and may have lost the log
// tail it had not fsynced, which its followers may hold) keeps, while it
// catches up, the leaderships of partitions it is the last ISR member of,
// but at new leader epochs, so its followers' divergence check sees the
// change; where another ISR member holds the data, that member leads and
// the restarted broker leaves the ISR. When its new registration's
// session runs out silent, it loses the rest.
func TestARestartedLeaderLeadsOnOnlyAtANewEpoch(t *testing.T) {
	f := newMembershipFixture(t)
	f.heartbeat(20*time.Second, 2, false)
	f.heartbeat(20*time.Second, 3, false)
	f.heartbeat(20*time.Second, 1, false)
	t0, t3 := f.partition("t", 0), f.partition("t", 3)
	f.apply([]metadata.Record{{Broker: &metadata.BrokerRecord{NodeID: 1, Incarnation: "b", Host: "h", Port: 9001}}})
	for _, c := range []struct {
		p      metadata.Partition
		before metadata.Partition
	}{{f.partition("t", 0), t0}, {f.partition("t", 3), t3}} {
		if c.p.Leader != 1 || c.p.LeaderEpoch != c.before.LeaderEpoch+1 {
			t.Fatalf("a partition of the re-registered leader: %+v; want led by 1 at epoch %d", c.p, c.before.LeaderEpoch+1)
		}
	}
	f.plan(21 * time.Second)
	if p := f.partition("t", 0); p.Leader != 1 || p.LeaderEpoch != t0.LeaderEpoch+1 {
		t.Fatalf("its partition of one replica: %+v; want its leadership kept while it catches up", p)
	}
	if p := f.partition("t", 3); p.Leader != 2 || p.LeaderEpoch <= t3.LeaderEpoch+1 || !slices.Equal(p.ISR, []int32{2}) {
		t.Fatalf("its partition with another ISR member: %+v; want led by 2 at a newer epoch, ISR [2]", p)
	}
	// It never heartbeats: when its session, counted from when the
	// controller first saw the registration, runs out it loses them.
	f.heartbeat(21*time.Second+testSession, 2, false)
	f.heartbeat(21*time.Second+testSession, 3, false)
	f.plan(21*time.Second + testSession)
	if p := f.partition("t", 0); p.Leader != -1 {
		t.Fatalf("partition of a fenced broker past its session: %+v; want leader -1", p)
	}
}

func TestControlledShutdownFencesTheBrokerAndMovesItsLeadershipsAtOnce(t *testing.T) {
	f := newMembershipFixture(t)
	f.heartbeat(time.Second, 1, true)
	f.plan(time.Second)
	br := f.im.Brokers[1]
	if !br.Fenced || !br.ControlledShutdown {
		t.Fatalf("broker asking to shut down: %+v; want fenced in controlled shutdown", br)
	}
	if p := f.partition("t", 0); p.Leader != -1 || p.LeaderEpoch != 1 {
		t.Fatalf("its partition: %+v; want leader -1 at epoch 1", p)
	}
	if p := f.partition("t", 3); p.Leader != 2 {
		t.Fatalf("its replicated partition: %+v; want leader 2", p)
	}
	if leadsAny(f.im, 1) {
		t.Fatal("the broker still leads a partition")
	}
	// Its later heartbeats (still asking to shut down) change nothing,
	// and it is not unfenced again.
	f.heartbeat(2*time.Second, 1, true)
	if recs := f.plan(2 * time.Second); len(recs) != 0 {
		t.Fatalf("planned after the shutdown was done: %+v", recs)
	}
}

func TestANewControllerGivesEveryBrokerAFullSession(t *testing.T) {
	f := newMembershipFixture(t)
	// The previous controller heard nothing for a while; this one starts
	// its table empty and first looks at t0+20s.
	f.live = newLiveness(testSession)
	if recs := f.plan(20 * time.Second); len(recs) != 0 {
		t.Fatalf("fenced at the new controller's first look: %+v", recs)
	}
	if recs := f.plan(20*time.Second + testSession - time.Millisecond); len(recs) != 0 {
		t.Fatalf("fenced within the new controller's first session: %+v", recs)
	}
	f.heartbeat(21*time.Second, 2, false)
	f.heartbeat(21*time.Second, 3, false)
	f.plan(20*time.Second + testSession)
	if ids := f.im.UnfencedBrokerIDs(); !slices.Equal(ids, []int32{2, 3}) {
		t.Fatalf("after a full session, unfenced %v; want [2 3]", ids)
	}
}

func TestPlacementUsesUnfencedBrokersOnly(t *testing.T) {
	f := newMembershipFixture(t)
	f.heartbeat(testSession, 2, false)
	f.heartbeat(testSession, 3, false)
	f.plan(testSession)
	c := &Controller{nodeID: 1, store: &quorum{}}
	if err := c.checkReplicationFactor(f.im, 3); err == nil {
		t.Fatal("replication factor 3 with 2 unfenced brokers accepted")
	}
	recs := c.partitionRecords(f.im, metadata.NewTopicID(), 1, 0, 4)
	for _, r := range recs {
		if l := r.Partition.Leader; l != 2 && l != 3 {
			t.Fatalf("partition placed on broker %d; only 2 and 3 are unfenced", l)
		}
	}
}

// When every ISR member is gone, a partition stays without a leader, and
// loses nothing, unless unclean.leader.election.enable lets a live
// replica outside the ISR lead; that replica is then the whole ISR.
func TestUncleanElectionTakesALiveReplicaOutsideTheISROnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		f := newMembershipFixture(t)
		f.unclean = func(*metadata.Topic) bool { return enabled }
		tid := f.im.Topics["t"].ID
		p3 := f.partition("t", 3) // leader 1, replicas and ISR [1 2]
		f.apply([]metadata.Record{{Partition: &metadata.PartitionRecord{TopicID: tid, Index: 3, Leader: 1, LeaderEpoch: p3.LeaderEpoch,
			Replicas: p3.Replicas, ISR: []int32{1}, PartitionEpoch: p3.PartitionEpoch + 1}}})
		for at := time.Duration(0); at <= 10*time.Second; at += 2 * time.Second {
			f.heartbeat(at, 2, false)
			f.heartbeat(at, 3, false)
			f.plan(at)
		}
		got := f.partition("t", 3)
		switch {
		case !enabled && (got.Leader != -1 || !slices.Equal(got.ISR, []int32{1})):
			t.Fatalf("unclean election off: %+v; want no leader and the ISR [1] kept", got)
		case enabled && (got.Leader != 2 || !slices.Equal(got.ISR, []int32{2}) || got.LeaderEpoch != p3.LeaderEpoch+1):
			t.Fatalf("unclean election on: %+v; want leader 2, ISR [2], a new leader epoch", got)
		}
	}
}
