package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The broker lifecycle of KIP-631 in a three-node cluster: brokers
// heartbeat to the active controller; one whose heartbeats stop for
// broker.session.timeout.ms is fenced and loses its leaderships, and is
// unfenced and leads them again once it is back; one stopped with SIGTERM
// hands its leaderships over before it exits.

// topicMetadata is node i's Metadata for topic, or nil when unavailable.
func (tc *testCluster) topicMetadata(i int, topic string) (*kmsg.MetadataResponse, *kmsg.MetadataResponseTopic) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, 2*time.Second)
	if err != nil {
		return nil, nil
	}
	mr := resp.(*kmsg.MetadataResponse)
	if len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 {
		return mr, nil
	}
	return mr, &mr.Topics[0]
}

// createPartitioned asks node i to create topic with n partitions of
// replication factor rf, and returns the error code.
func (tc *testCluster) createPartitioned(i int, topic string, n int32, rf int16) int16 {
	tc.t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, n, rf
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, 15*time.Second)
	if err != nil {
		tc.t.Fatal(err)
	}
	return resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode
}

// poll calls cond every 20ms until it returns "" or within passes, and
// fails the test with cond's last complaint.
func poll(t *testing.T, within time.Duration, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		why := cond()
		if why == "" {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("after %v: %s", within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ledBy lists the partitions of mt that node leads.
func ledBy(mt *kmsg.MetadataResponseTopic, node int32) map[int32]int32 {
	epochs := map[int32]int32{}
	for _, p := range mt.Partitions {
		if p.Leader == node && p.ErrorCode == 0 {
			epochs[p.Partition] = p.LeaderEpoch
		}
	}
	return epochs
}

func brokerIDs(mr *kmsg.MetadataResponse) []int32 {
	var ids []int32
	for _, b := range mr.Brokers {
		ids = append(ids, b.NodeID)
	}
	slices.Sort(ids)
	return ids
}

func TestClusterFencesAKilledBrokerAndUnfencesItWhenItReturns(t *testing.T) {
	const session = 3000 * time.Millisecond
	tc := startCluster(t, 3, "--set", fmt.Sprintf("broker.session.timeout.ms=%d", session.Milliseconds()),
		"--set", "broker.heartbeat.interval.ms=300")
	ctrl := tc.waitController(15 * time.Second)
	victim := (ctrl + 1) % 3
	victimID := int32(victim + 1)
	const topic, parts = "owned", 6
	if code := tc.createPartitioned(ctrl, topic, parts, 1); code != 0 {
		t.Fatalf("create %q: %v", topic, kerr.ErrorForCode(code))
	}
	var owned map[int32]int32 // the victim's partitions and their leader epochs
	poll(t, 10*time.Second, func() string {
		_, mt := tc.topicMetadata(ctrl, topic)
		if mt == nil || len(mt.Partitions) != parts {
			return "topic not in the controller's Metadata"
		}
		owned = ledBy(mt, victimID)
		return ""
	})
	if len(owned) == 0 {
		t.Fatalf("node %d leads none of the %d partitions", victimID, parts)
	}

	// Data the victim holds, acknowledged by it (acks=all: fsynced).
	var addrs []string
	for _, nd := range tc.c.Nodes {
		addrs = append(addrs, nd.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pcl := newClient(t, addrs[0], kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	var want []string
	for p := range owned {
		for k := range 3 {
			v := fmt.Sprintf("p%d/%d", p, k)
			want = append(want, v)
			if err := pcl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce to partition %d: %v", p, err)
			}
		}
	}

	tc.c.Kill(victim)
	took := poll(t, session+10*time.Second, func() string {
		mr, mt := tc.topicMetadata(ctrl, topic)
		if mt == nil {
			return "no Metadata from the controller"
		}
		if slices.Contains(brokerIDs(mr), victimID) {
			return fmt.Sprintf("Metadata still lists the killed node %d among brokers %v", victimID, brokerIDs(mr))
		}
		for _, p := range mt.Partitions {
			if _, ok := owned[p.Partition]; !ok {
				continue
			}
			if p.ErrorCode != kerr.LeaderNotAvailable.Code || p.Leader != -1 || p.LeaderEpoch <= owned[p.Partition] ||
				!slices.Equal(p.Replicas, []int32{victimID}) || !slices.Equal(p.ISR, []int32{victimID}) {
				return fmt.Sprintf("partition %d: %v, leader %d, epoch %d, replicas %v, ISR %v; want LEADER_NOT_AVAILABLE, leader -1, a higher epoch than %d, replicas and ISR [%d]",
					p.Partition, kerr.ErrorForCode(p.ErrorCode), p.Leader, p.LeaderEpoch, p.Replicas, p.ISR, owned[p.Partition], victimID)
			}
		}
		return ""
	})
	t.Logf("node %d killed; fenced and its partitions leaderless after %v (session timeout %v)", victimID, took.Round(time.Millisecond), session)
	if took > session+3*time.Second {
		t.Fatalf("fencing took %v; the session timeout is %v", took, session)
	}
	fencedEpochs := map[int32]int32{}
	_, mt := tc.topicMetadata(ctrl, topic)
	for _, p := range mt.Partitions {
		if _, ok := owned[p.Partition]; ok {
			fencedEpochs[p.Partition] = p.LeaderEpoch
		}
	}

	// DescribeCluster v2 lists the fenced broker only when asked, flagged.
	dreq := kmsg.NewPtrDescribeClusterRequest()
	dreq.IncludeFencedBrokers = true
	dresp, err := tc.request(ctrl, dreq, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var fencedFlag = map[int32]bool{}
	for _, b := range dresp.(*kmsg.DescribeClusterResponse).Brokers {
		fencedFlag[b.NodeID] = b.IsFenced
	}
	if len(fencedFlag) != 3 || !fencedFlag[victimID] || fencedFlag[int32(ctrl+1)] {
		t.Fatalf("DescribeCluster with fenced brokers: fenced flags %v; want node %d alone fenced", fencedFlag, victimID)
	}
	dresp, err = tc.request(ctrl, kmsg.NewPtrDescribeClusterRequest(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range dresp.(*kmsg.DescribeClusterResponse).Brokers {
		if b.NodeID == victimID {
			t.Fatalf("DescribeCluster lists the fenced node %d", victimID)
		}
	}

	// Topics are still created, on the live brokers only; a replication
	// factor above them is refused.
	if code := tc.createPartitioned(ctrl, "while-fenced", 4, 1); code != 0 {
		t.Fatalf("create while node %d is fenced: %v", victimID, kerr.ErrorForCode(code))
	}
	poll(t, 10*time.Second, func() string {
		_, mt := tc.topicMetadata(ctrl, "while-fenced")
		if mt == nil || len(mt.Partitions) != 4 {
			return "while-fenced not in Metadata"
		}
		for _, p := range mt.Partitions {
			if p.Leader == victimID || p.Leader < 1 || p.ErrorCode != 0 {
				t.Fatalf("partition %d of a topic created while node %d is fenced: leader %d, %v", p.Partition, victimID, p.Leader, kerr.ErrorForCode(p.ErrorCode))
			}
		}
		return ""
	})
	if code := tc.createPartitioned(ctrl, "three-replicas", 1, 3); code != kerr.InvalidReplicationFactor.Code {
		t.Fatalf("replication factor 3 with 2 unfenced brokers: %v; want INVALID_REPLICATION_FACTOR", kerr.ErrorForCode(code))
	}

	// Back: unfenced, leading its partitions again at a higher epoch.
	if err := tc.c.Start(victim); err != nil {
		t.Fatal(err)
	}
	took = poll(t, 15*time.Second, func() string {
		mr, mt := tc.topicMetadata(ctrl, topic)
		if mt == nil {
			return "no Metadata from the controller"
		}
		if !slices.Contains(brokerIDs(mr), victimID) {
			return fmt.Sprintf("node %d not among brokers %v after its restart", victimID, brokerIDs(mr))
		}
		led := ledBy(mt, victimID)
		for p := range owned {
			if e, ok := led[p]; !ok || e <= fencedEpochs[p] {
				return fmt.Sprintf("partition %d: led by node %d at epoch %d? (%v); want it leading at an epoch above %d", p, victimID, e, ok, fencedEpochs[p])
			}
		}
		return ""
	})
	t.Logf("node %d restarted; unfenced and leading again after %v", victimID, took.Round(time.Millisecond))

	var got []string
	ccl := newClient(t, addrs[0], kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for len(got) < len(want) {
		fs := ccl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read back %d of %d records: %v", len(got), len(want), err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read back %v; want %v", got, want)
	}
}

func TestClusterNewControllerGivesLiveBrokersAFullSession(t *testing.T) {
	const session = 3000 * time.Millisecond
	tc := startCluster(t, 3, "--set", fmt.Sprintf("broker.session.timeout.ms=%d", session.Milliseconds()),
		"--set", "broker.heartbeat.interval.ms=300")
	old := tc.waitController(15 * time.Second)
	tc.c.Kill(old)
	killed := time.Now()
	next := tc.waitController(10 * time.Second)
	elected := time.Now()
	oldID := int32(old + 1)
	var live []int32
	for i := range tc.c.Nodes {
		if i != old {
			live = append(live, int32(i+1))
		}
	}
	// From its election on, the new controller lists both live brokers
	// all along, and fences the killed one once its session (counted
	// from the election) is over.
	poll(t, session+10*time.Second, func() string {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{}
		resp, err := tc.request(next, req, 2*time.Second)
		if err != nil {
			return fmt.Sprintf("Metadata from node %d: %v", next+1, err)
		}
		ids := brokerIDs(resp.(*kmsg.MetadataResponse))
		for _, id := range live {
			if !slices.Contains(ids, id) {
				t.Fatalf("the new controller's Metadata lists brokers %v: live node %d was fenced", ids, id)
			}
		}
		if slices.Contains(ids, oldID) {
			return fmt.Sprintf("the killed node %d is still listed among %v", oldID, ids)
		}
		return ""
	})
	t.Logf("node %d (the controller) killed; fenced by node %d after %v, %v after the new controller was seen", oldID, next+1,
		time.Since(killed).Round(time.Millisecond), time.Since(elected).Round(time.Millisecond))
	if d := time.Since(elected); d < session-time.Second {
		t.Fatalf("the killed node was fenced %v after the new controller was elected; its session (%v) should count from the election", d, session)
	}
	// Keep watching a while: no live broker is fenced later either.
	deadline := time.Now().Add(session / 2)
	for time.Now().Before(deadline) {
		brokers, err := tc.brokers(next)
		if err != nil {
			t.Fatal(err)
		}
		if !tc.listsRunningNodes(brokers) {
			t.Fatalf("node %d's Metadata lists %v: a live broker was fenced", next+1, brokers)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A broker restarted within its session registers again, fenced until it
// has caught up, and then leads its partitions (here of one replica) again,
// at new leader epochs: it may have lost the tail it had not fsynced.
func TestClusterBrokerRestartedWithinItsSessionLeadsAgainAtNewEpochs(t *testing.T) {
	tc := startCluster(t, 3, "--set", "broker.session.timeout.ms=30000", "--set", "broker.heartbeat.interval.ms=300")
	ctrl := tc.waitController(15 * time.Second)
	victim := (ctrl + 1) % 3
	victimID := int32(victim + 1)
	const topic, parts = "kept", 6
	if code := tc.createPartitioned(ctrl, topic, parts, 1); code != 0 {
		t.Fatalf("create %q: %v", topic, kerr.ErrorForCode(code))
	}
	var owned map[int32]int32
	poll(t, 10*time.Second, func() string {
		_, mt := tc.topicMetadata(ctrl, topic)
		if mt == nil || len(mt.Partitions) != parts {
			return "topic not in the controller's Metadata"
		}
		owned = ledBy(mt, victimID)
		return ""
	})
	if len(owned) == 0 {
		t.Fatalf("node %d leads none of the %d partitions", victimID, parts)
	}
	unfenced := func() int {
		return strings.Count(tc.c.Log(victim), `msg="broker fencing changed" node=`+fmt.Sprint(victimID)+" fenced=false")
	}
	before := unfenced()
	if before == 0 {
		t.Fatalf("node %d's log does not say it was unfenced at its first start", victimID)
	}
	tc.c.Kill(victim)
	if err := tc.c.Start(victim); err != nil {
		t.Fatal(err)
	}
	// Registered again (fenced until caught up), then unfenced, leading
	// what it led, each at a newer leader epoch.
	poll(t, 15*time.Second, func() string {
		if unfenced() == before {
			return fmt.Sprintf("the restarted node %d has not logged that it is unfenced", victimID)
		}
		mr, mt := tc.topicMetadata(ctrl, topic)
		if mt == nil {
			return "no Metadata from the controller"
		}
		if !slices.Contains(brokerIDs(mr), victimID) {
			return fmt.Sprintf("node %d not among brokers %v after its restart", victimID, brokerIDs(mr))
		}
		led := ledBy(mt, victimID)
		newer := len(led) == len(owned)
		for p, epoch := range owned {
			newer = newer && led[p] > epoch
		}
		if !newer {
			return fmt.Sprintf("node %d leads %v (partition: epoch); want the partitions of %v at newer epochs", victimID, led, owned)
		}
		return ""
	})
	pcl := newClient(t, tc.c.Nodes[ctrl].Addr, kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for p := range owned {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("after restart")}).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d, led by the restarted node: %v", p, err)
		}
	}
}

func TestClusterBrokerStoppedWithSIGTERMHandsItsLeadershipsOverBeforeExiting(t *testing.T) {
	// A session far longer than the test: a leadership that moves was
	// moved by the controlled shutdown, not by a session expiring.
	tc := startCluster(t, 3, "--set", "broker.session.timeout.ms=60000", "--set", "broker.heartbeat.interval.ms=300")
	ctrl := tc.waitController(15 * time.Second)
	victim := (ctrl + 2) % 3
	victimID := int32(victim + 1)
	const topic, parts = "handed-over", 6
	if code := tc.createPartitioned(ctrl, topic, parts, 1); code != 0 {
		t.Fatalf("create %q: %v", topic, kerr.ErrorForCode(code))
	}
	var owned map[int32]int32
	poll(t, 10*time.Second, func() string {
		_, mt := tc.topicMetadata(ctrl, topic)
		if mt == nil || len(mt.Partitions) != parts {
			return "topic not in the controller's Metadata"
		}
		owned = ledBy(mt, victimID)
		return ""
	})
	if len(owned) == 0 {
		t.Fatalf("node %d leads none of the %d partitions", victimID, parts)
	}

	start := time.Now()
	tc.c.Terminate(victim)
	exited := time.Since(start)
	if exited > 8*time.Second {
		t.Fatalf("node %d took %v to exit after SIGTERM", victimID, exited)
	}
	// Read at once after the exit: the leaderships were moved (leader -1:
	// with one replica there is no other) while the process still ran.
	mr, mt := tc.topicMetadata(ctrl, topic)
	if mt == nil {
		t.Fatal("no Metadata from the controller")
	}
	if slices.Contains(brokerIDs(mr), victimID) {
		t.Fatalf("Metadata lists node %d after its controlled shutdown", victimID)
	}
	for _, p := range mt.Partitions {
		if _, ok := owned[p.Partition]; !ok {
			continue
		}
		if p.Leader != -1 || p.ErrorCode != kerr.LeaderNotAvailable.Code || p.LeaderEpoch <= owned[p.Partition] {
			t.Fatalf("partition %d right after node %d exited on SIGTERM: leader %d, epoch %d (was %d), %v; want leader -1 at a higher epoch, LEADER_NOT_AVAILABLE",
				p.Partition, victimID, p.Leader, p.LeaderEpoch, owned[p.Partition], kerr.ErrorForCode(p.ErrorCode))
		}
	}
	if log := tc.c.Log(victim); !strings.Contains(log, "controlled shutdown done") {
		t.Fatalf("node %d's log does not say its controlled shutdown was confirmed", victimID)
	}
	t.Logf("node %d exited %v after SIGTERM, its leaderships already moved", victimID, exited.Round(time.Millisecond))

	// Back again, it leads them once more.
	if err := tc.c.Start(victim); err != nil {
		t.Fatal(err)
	}
	poll(t, 15*time.Second, func() string {
		_, mt := tc.topicMetadata(ctrl, topic)
		if mt == nil {
			return "no Metadata from the controller"
		}
		if led := ledBy(mt, victimID); len(led) != len(owned) {
			return fmt.Sprintf("node %d leads partitions %v after its restart; want %d", victimID, led, len(owned))
		}
		return ""
	})
}
