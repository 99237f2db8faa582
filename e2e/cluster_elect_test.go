package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Leader elections on request (ElectLeaders, `weir cluster elect`), the
// automatic return of leadership to preferred replicas, the count of
// unclean elections, and what `topic describe` and `cluster describe`
// show of partitions in trouble, on three-node clusters of real
// processes.

// electSettings are the cluster settings of these tests: a broker is
// fenced 5 s after its last heartbeat (under a loaded machine's pauses a
// shorter session fences live nodes and moves leaderships the tests
// expect to stay), and a follower leaves the ISR after lagMs behind.
func electSettings(lagMs int, extra ...string) []string {
	return append([]string{"--set", "broker.session.timeout.ms=5000", "--set", "broker.heartbeat.interval.ms=500",
		"--set", "replica.lag.time.max.ms=" + strconv.Itoa(lagMs)}, extra...)
}

// brokersFlag is --brokers with the nodes that run.
func (tc *testCluster) brokersFlag() string {
	var s []string
	for i, nd := range tc.c.Nodes {
		if tc.c.Running(i) {
			s = append(s, nd.Addr)
		}
	}
	return "--brokers=" + strings.Join(s, ",")
}

// mustPartition is waitPartition that fails the test, saying what was
// awaited, when ok does not hold within.
func (tc *testCluster) mustPartition(topic string, p int32, within time.Duration, what string, ok func(kmsg.MetadataResponseTopicPartition) bool) kmsg.MetadataResponseTopicPartition {
	tc.t.Helper()
	st, held := tc.waitPartition(topic, p, within, ok)
	if !held {
		tc.t.Fatalf("%s/%d: not %s within %v; last seen leader %d, epoch %d, replicas %v, ISR %v", topic, p, what, within, st.Leader, st.LeaderEpoch, st.Replicas, st.ISR)
	}
	return st
}

// uncleanElections is the count of unclean elections node i reports in
// its DescribeCluster answer.
func (tc *testCluster) uncleanElections(i int) (int64, error) {
	resp, err := tc.request(i, kmsg.NewPtrDescribeClusterRequest(), 2*time.Second)
	if err != nil {
		return 0, err
	}
	n, found := int64(0), false
	dc := resp.(*kmsg.DescribeClusterResponse)
	dc.UnknownTags.Each(func(key uint32, val []byte) {
		if v, size := binary.Varint(val); key == 10001 && size > 0 {
			n, found = v, true
		}
	})
	if !found {
		return 0, errors.New("no count of unclean elections in the answer")
	}
	return n, nil
}

// bounce kills node i, waits until topic/p, which it led, has another
// leader, restarts it and waits until it is back in the ISR; it returns
// the partition's state then. A restarted node answers from the metadata
// it had before it catches up, so a state counts only from a node that
// knows of the failover (leader not i, epoch at least the failover's).
func (tc *testCluster) bounce(i int, topic string, p int32) kmsg.MetadataResponseTopicPartition {
	tc.t.Helper()
	id := int32(i + 1)
	tc.mustPartition(topic, p, 30*time.Second, fmt.Sprintf("led by node %d with every replica in sync", id), func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader == id && len(st.ISR) == len(st.Replicas)
	})
	tc.c.Kill(i)
	moved := tc.mustPartition(topic, p, 30*time.Second, "led by another node", func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && st.Leader != id
	})
	if err := tc.c.Start(i); err != nil {
		tc.t.Fatal(err)
	}
	return tc.mustPartition(topic, p, 45*time.Second, fmt.Sprintf("with node %d back in the ISR", id), func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader != id && st.LeaderEpoch >= moved.LeaderEpoch && slices.Contains(st.ISR, id) && len(st.ISR) == len(st.Replicas)
	})
}

// ledAgainBy waits until node id leads topic/p at a leader epoch above
// before's, as seen by a node that knows of the change.
func (tc *testCluster) ledAgainBy(topic string, p int32, id int32, before kmsg.MetadataResponseTopicPartition, within time.Duration) kmsg.MetadataResponseTopicPartition {
	tc.t.Helper()
	return tc.mustPartition(topic, p, within, fmt.Sprintf("led by its preferred replica %d at an epoch above %d", id, before.LeaderEpoch), func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader == id && st.LeaderEpoch > before.LeaderEpoch
	})
}

// An idempotent acks=all producer writes to both partitions of a topic
// while each partition's preferred leader is killed and restarted. With
// auto.leader.rebalance.enable off, leadership stays where the failover
// put it even after the preferred replica is back in the ISR; an
// ElectLeaders PREFERRED request, once through kadm and once through
// `weir cluster elect --preferred`, moves it back, and every acknowledged
// record is read back exactly once, in order.
func TestClusterPreferredElectionOnRequestMovesLeadershipBackLosingNothing(t *testing.T) {
	tc := startCluster(t, 3, electSettings(10000, "--set", "auto.leader.rebalance.enable=false")...)
	ctrl := tc.waitController(15 * time.Second)
	tc.createReplicated(ctrl, "pref", 2, 3, 2)
	var preferred [2]int32
	for p := range int32(2) {
		st := tc.mustPartition("pref", p, 15*time.Second, "led by its preferred replica", func(st kmsg.MetadataResponseTopicPartition) bool {
			return len(st.Replicas) == 3 && st.Leader == st.Replicas[0] && len(st.ISR) == 3
		})
		preferred[p] = st.Replicas[0]
	}
	if preferred[0] == preferred[1] {
		t.Fatalf("both partitions prefer node %d; want them placed on different nodes", preferred[0])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cl := newClient(t, tc.seeds()[0], kgo.SeedBrokers(tc.seeds()...), kgo.DefaultProduceTopic("pref"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordRetries(1000), kgo.RecordDeliveryTimeout(120*time.Second))
	var mu sync.Mutex
	acked := map[int32][]int{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := int32(i % 2)
			cl.Produce(ctx, &kgo.Record{Partition: p, Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[p] = append(acked[p], i)
					mu.Unlock()
				}
			})
			time.Sleep(3 * time.Millisecond)
		}
	}()

	// Partition 0: moved back through kadm.
	away := tc.bounce(int(preferred[0]-1), "pref", 0)
	time.Sleep(time.Second) // leadership does not come back by itself
	if st, _ := tc.partitionState(int(preferred[1]-1), "pref", 0); st.Leader == preferred[0] {
		t.Fatalf("partition 0 went back to its preferred replica %d unasked, with auto.leader.rebalance.enable=false", preferred[0])
	}
	adm := kadm.NewClient(newClient(t, tc.seeds()[0], kgo.SeedBrokers(tc.seeds()...)))
	res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{"pref": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := res["pref"][0]; !ok || r.Err != nil {
		t.Fatalf("ElectLeaders PREFERRED of pref/0: %+v; want success", r)
	}
	tc.ledAgainBy("pref", 0, preferred[0], away, 10*time.Second)

	// Partition 1: moved back through the CLI.
	away = tc.bounce(int(preferred[1]-1), "pref", 1)
	out, err := runWeir(t, "", "cluster", "elect", "--preferred", "pref:1", tc.brokersFlag())
	if err != nil {
		t.Fatalf("weir cluster elect: %v\n%s", err, out)
	}
	t.Logf("weir cluster elect --preferred pref:1:\n%s", out)
	if !regexpLine(out, "pref", "1", "elected") {
		t.Fatalf("weir cluster elect does not report partition 1 elected:\n%s", out)
	}
	tc.ledAgainBy("pref", 1, preferred[1], away, 10*time.Second)
	// Asked again, nothing is to be done, which is not a failure.
	out, err = runWeir(t, "", "cluster", "elect", "--preferred", "pref", tc.brokersFlag())
	if err != nil || !regexpLine(out, "pref", "0", "not needed") || !regexpLine(out, "pref", "1", "not needed") {
		t.Fatalf("second weir cluster elect --preferred pref: %v\n%s", err, out)
	}

	// A node that is not the controller forwards the request to it and
	// relays its answer.
	ctrl = tc.waitController(15 * time.Second)
	req := kmsg.NewPtrElectLeadersRequest()
	rt := kmsg.NewElectLeadersRequestTopic()
	rt.Topic, rt.Partitions = "pref", []int32{0}
	req.Topics = append(req.Topics, rt)
	kresp, err := tc.request((ctrl+1)%3, req, 15*time.Second)
	for try := 0; err != nil && try < 3; try++ { // the connection may predate the node's restart
		time.Sleep(200 * time.Millisecond)
		kresp, err = tc.request((ctrl+1)%3, req, 15*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	if resp := kresp.(*kmsg.ElectLeadersResponse); len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 ||
		resp.Topics[0].Partitions[0].ErrorCode != kerr.ElectionNotNeeded.Code {
		t.Fatalf("ElectLeaders of pref/0 asked of node %d, not the controller: %+v; want ELECTION_NOT_NEEDED", (ctrl+1)%3+1, resp)
	}

	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	total := len(acked[0]) + len(acked[1])
	if len(acked[0]) == 0 || len(acked[1]) == 0 {
		t.Fatalf("acknowledged %d and %d records; want some on each partition", len(acked[0]), len(acked[1]))
	}
	recs := consumeAll(t, tc.seeds()[0], "pref", total, kgo.SeedBrokers(tc.seeds()...))
	seen := map[int]int{}
	last := map[int32]int{0: -1, 1: -1}
	for _, r := range recs {
		v, _ := strconv.Atoi(string(r.Value))
		seen[v]++
		if v <= last[r.Partition] {
			t.Fatalf("partition %d: record %d read after %d", r.Partition, v, last[r.Partition])
		}
		last[r.Partition] = v
	}
	for p, vs := range acked {
		for _, v := range vs {
			if seen[v] != 1 {
				t.Fatalf("acknowledged record %d of partition %d read %d times; want once", v, p, seen[v])
			}
		}
	}
	t.Logf("%d records acknowledged across two preferred elections, each read once", total)
}

// regexpLine reports whether out has a line whose fields start with
// topic and partition and which contains result.
func regexpLine(out, topic, partition, result string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == topic && f[1] == partition && strings.Contains(line, result) {
			return true
		}
	}
	return false
}

// With auto.leader.rebalance.enable and a one-second check, leadership
// returns to the preferred replica by itself once it is back in the ISR.
func TestClusterAutoRebalanceReturnsLeadershipToThePreferredReplica(t *testing.T) {
	tc := startCluster(t, 3, electSettings(10000, "--set", "auto.leader.rebalance.enable=true",
		"--set", "leader.imbalance.check.interval.seconds=1")...)
	ctrl := tc.waitController(15 * time.Second)
	tc.createReplicated(ctrl, "rebalance", 1, 3, 2)
	st := tc.mustPartition("rebalance", 0, 15*time.Second, "led by its preferred replica", func(st kmsg.MetadataResponseTopicPartition) bool {
		return len(st.Replicas) == 3 && st.Leader == st.Replicas[0]
	})
	pref := st.Replicas[0]
	tc.c.Kill(int(pref - 1))
	moved := tc.mustPartition("rebalance", 0, 30*time.Second, "led by another node", func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && st.Leader != pref
	})
	if err := tc.c.Start(int(pref - 1)); err != nil {
		t.Fatal(err)
	}
	back := tc.ledAgainBy("rebalance", 0, pref, moved, 45*time.Second)
	if !slices.Contains(back.ISR, pref) {
		t.Fatalf("node %d leads with ISR %v, which it is not in", pref, back.ISR)
	}
}

// With unclean.leader.election.enable off, a partition whose ISR died has
// no leader even when its out-of-sync replica is back; `weir cluster
// elect --unclean` elects that replica, which becomes the whole ISR.
// Every node then counts one unclean election, and `weir cluster
// describe` shows it.
func TestClusterUncleanElectionOnRequestElectsAnOutOfSyncReplicaAndIsCounted(t *testing.T) {
	tc := startCluster(t, 3, electSettings(1500)...)
	ctrl := tc.waitController(15 * time.Second)
	tc.createReplicated(ctrl, "dead-isr", 1, 2, 1)
	st := tc.mustPartition("dead-isr", 0, 15*time.Second, "led with both replicas in sync", func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && len(st.ISR) == 2
	})
	leader, follower := st.Leader, st.Replicas[0]
	if follower == leader {
		follower = st.Replicas[1]
	}
	for i := range tc.c.Nodes {
		if n, err := tc.uncleanElections(i); err != nil || n != 0 {
			t.Fatalf("node %d counts %d unclean elections (%v) before any; want 0", i+1, n, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, tc.seeds()[0], kgo.SeedBrokers(tc.seeds()...), kgo.DefaultProduceTopic("dead-isr"), kgo.RecordRetries(50))
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	tc.c.Kill(int(follower - 1))
	tc.mustPartition("dead-isr", 0, 30*time.Second, "with the leader alone in the ISR", func(st kmsg.MetadataResponseTopicPartition) bool {
		return len(st.ISR) == 1 && st.ISR[0] == leader
	})
	for i := 20; i < 30; i++ { // held by the leader alone
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	tc.c.Kill(int(leader - 1))

	if err := tc.c.Start(int(follower - 1)); err != nil {
		t.Fatal(err)
	}
	// Unclean election is off: once the dead leader is fenced the
	// partition has no leader, and the out-of-sync replica is not given
	// it (as the node that ran throughout sees it; the restarted one may
	// still answer from the metadata it had before).
	third := 6 - leader - follower
	if _, ok := tc.waitPartition("dead-isr", 0, 30*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader == -1
	}); !ok {
		t.Fatal("the partition kept a leader after its whole ISR was killed")
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if st, _ := tc.partitionState(int(third-1), "dead-isr", 0); st.Leader == follower {
			t.Fatalf("node %d, out of sync, leads with unclean.leader.election.enable off and no request", follower)
		}
	}
	var out string
	deadline := time.Now().Add(45 * time.Second)
	for {
		var err error
		out, err = runWeir(t, "", "cluster", "elect", "--unclean", "dead-isr:0", tc.brokersFlag())
		if err == nil && regexpLine(out, "dead-isr", "0", "elected") {
			break
		}
		// Until the old leader's session expires it counts as live (not
		// needed); until the restarted replica has caught up with the
		// metadata it is fenced (no eligible leader); the metadata
		// quorum may be choosing a controller.
		said := out + fmt.Sprint(err)
		if time.Now().After(deadline) || !(strings.Contains(said, "not needed") || strings.Contains(said, "ELIGIBLE_LEADERS_NOT_AVAILABLE") || strings.Contains(said, "NOT_CONTROLLER")) {
			t.Fatalf("weir cluster elect --unclean dead-isr:0: %v\n%s", err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("weir cluster elect --unclean:\n%s", out)
	st = tc.mustPartition("dead-isr", 0, 10*time.Second, fmt.Sprintf("led by the out-of-sync replica %d", follower), func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader == follower
	})
	if !slices.Equal(st.ISR, []int32{follower}) {
		t.Fatalf("ISR %v after the unclean election; want the new leader alone", st.ISR)
	}
	for i := range tc.c.Nodes {
		if !tc.c.Running(i) {
			continue
		}
		var n int64
		var err error
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if n, err = tc.uncleanElections(i); err == nil && n == 1 {
				break
			}
		}
		if err != nil || n != 1 {
			t.Fatalf("node %d counts %d unclean elections (%v); want 1", i+1, n, err)
		}
	}
	desc, err := runWeir(t, "", "cluster", "describe", tc.brokersFlag())
	if err != nil || !strings.Contains(desc, "unclean leader elections: 1\n") {
		t.Fatalf("weir cluster describe: %v\n%s", err, desc)
	}
	// The partition is writable again, and the writes only the lost
	// leader held are gone.
	recs := consumeAll(t, tc.c.Nodes[follower-1].Addr, "dead-isr", 20)
	if len(recs) != 20 {
		t.Fatalf("read %d records from the new leader; want the 20 it held", len(recs))
	}
}

// One node of three is down: `weir topic describe` shows it offline in
// every partition it holds, --under-replicated lists those partitions,
// --under-min-isr-partitions only those of the topic needing all three
// replicas, --unavailable-partitions none, and `weir cluster describe`
// counts them.
func TestClusterDescribeShowsPartitionsShortOfReplicasWhenANodeIsDown(t *testing.T) {
	tc := startCluster(t, 3, electSettings(4000)...)
	ctrl := tc.waitController(15 * time.Second)
	tc.createReplicated(ctrl, "tolerant", 3, 3, 2)
	tc.createReplicated(ctrl, "strict", 2, 3, 3)
	victim := (ctrl + 1) % 3
	victimID := int32(victim + 1)
	topics := []struct {
		topic string
		parts int32
	}{{"tolerant", 3}, {"strict", 2}}
	for _, tp := range topics {
		for p := range tp.parts {
			tc.mustPartition(tp.topic, p, 30*time.Second, "led with every replica in sync", func(st kmsg.MetadataResponseTopicPartition) bool {
				return st.Leader > 0 && len(st.ISR) == 3
			})
		}
	}
	tc.c.Kill(victim)
	for _, tp := range topics {
		for p := range tp.parts {
			tc.mustPartition(tp.topic, p, 30*time.Second, fmt.Sprintf("led without node %d in the ISR", victimID), func(st kmsg.MetadataResponseTopicPartition) bool {
				return st.Leader > 0 && st.Leader != victimID && !slices.Contains(st.ISR, victimID) && slices.Contains(st.OfflineReplicas, victimID)
			})
		}
	}
	brokers := tc.brokersFlag()
	id := strconv.Itoa(int(victimID))

	out, err := runWeir(t, "", "topic", "describe", "tolerant", brokers)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		// PARTITION LEADER EPOCH REPLICAS ISR OFFLINE ...
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		if _, err := strconv.Atoi(f[0]); err != nil {
			continue
		}
		rows++
		if f[1] == id || !strings.Contains(f[3], id) || strings.Contains(f[4], id) || f[5] != id {
			t.Errorf("row %q: want a leader other than %s, %s among the replicas, out of the ISR and offline", line, id, id)
		}
	}
	if rows != 3 {
		t.Fatalf("topic describe shows %d partitions; want 3:\n%s", rows, out)
	}

	listed := func(out string) map[string]bool {
		m := map[string]bool{}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] != "TOPIC" {
				if _, err := strconv.Atoi(f[1]); err == nil {
					m[f[0]+"/"+f[1]] = true
				}
			}
		}
		return m
	}
	out, err = runWeir(t, "", "topic", "describe", "--under-replicated", brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("topic describe --under-replicated:\n%s", out)
	got := listed(out)
	for _, want := range []string{"tolerant/0", "tolerant/1", "tolerant/2", "strict/0", "strict/1"} {
		if !got[want] {
			t.Errorf("--under-replicated does not list %s:\n%s", want, out)
		}
	}
	out, err = runWeir(t, "", "topic", "describe", "--under-min-isr-partitions", brokers)
	if err != nil {
		t.Fatal(err)
	}
	if got := listed(out); len(got) != 2 || !got["strict/0"] || !got["strict/1"] {
		t.Fatalf("--under-min-isr-partitions lists %v; want strict/0 and strict/1 alone:\n%s", got, out)
	}
	out, err = runWeir(t, "", "topic", "describe", "--unavailable-partitions", "tolerant", "strict", brokers)
	if err != nil || !strings.Contains(out, "no unavailable partitions") {
		t.Fatalf("--unavailable-partitions: %v\n%s", err, out)
	}

	desc, err := runWeir(t, "", "cluster", "describe", brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster describe:\n%s", desc)
	for _, want := range []string{"fenced brokers: 1 (" + id + ")\n", "partitions without a leader: 0\n", "under-replicated partitions: 5\n", "under-min-ISR partitions: 2\n", "unclean leader elections: 0\n"} {
		if !strings.Contains(desc, want) {
			t.Errorf("cluster describe lacks %q", want)
		}
	}
}
