package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// An acks=all write survives while one ISR member that holds it
// survives, also when another ISR member comes back from a crash without
// the partition's log (its disk lost or replaced): it holds none of the
// acknowledged writes, so it must not count as in sync, nor be elected
// (Kafka removes a broker that registers after an unclean shutdown from
// the ISRs it was in: KIP-966).
//
// The interleaving: three voters and one broker-only node, 4. A
// partition whose replicas are a leader L, node 4 and a third node G, ISR
// all three with 4 before G, takes 100 acks=all writes. Node 4 is killed,
// the partition's directory on it is gone, and it is started again within
// the broker session timeout: it registers a new incarnation, and the
// controller takes it out of the ISR. L is killed before 4 has fetched
// anything. The controller must elect G, which holds every acknowledged
// write, not node 4, whose log is empty.
func TestClusterAcknowledgedWritesSurviveAnISRMemberReplacedEmpty(t *testing.T) {
	tc := startClusterWithBrokers(t, 3, 1, "--set", "broker.session.timeout.ms=6000", "--set", "broker.heartbeat.interval.ms=300",
		"--set", "replica.lag.time.max.ms=30000")
	ctrl := tc.waitController(20 * time.Second)
	const topic = "lostdisk"
	tc.createReplicated(ctrl, topic, 12, 3, 2)
	// A partition led elsewhere than node 4, with 4 the first ISR member
	// after its leader.
	part, leader := int32(-1), -1
	for p := range int32(12) {
		st, ok := tc.partitionState(ctrl, topic, p)
		if !ok || st.Leader == 4 || len(st.ISR) != 3 {
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(st.ISR), func(id int32) bool { return id == st.Leader })
		if rest[0] == 4 {
			part, leader = p, int(st.Leader-1)
			break
		}
	}
	if part < 0 {
		t.Fatal("setup: placement gave no partition with node 4 first after its leader in the ISR")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seeds := tc.seeds()
	cl := newClient(t, seeds[leader], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	const n = 100
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("acks=all record %d: %v", i, err)
		}
	}
	cl.Close()
	if st, ok := tc.waitPartition(topic, part, 20*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return len(st.ISR) == 3
	}); !ok {
		t.Fatalf("ISR of %s-%d never held all three replicas: %+v", topic, part, st)
	}

	// Node 4's machine is lost and replaced; L dies.
	tc.c.Kill(3)
	if err := os.RemoveAll(filepath.Join(tc.c.Nodes[3].DataDir, topic+"-"+strconv.Itoa(int(part)))); err != nil {
		t.Fatal(err)
	}
	tc.c.Kill(leader)
	if err := tc.c.Start(3); err != nil {
		t.Fatal(err)
	}
	st, ok := tc.waitPartition(topic, part, 40*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && int(st.Leader-1) != leader
	})
	if !ok {
		t.Fatalf("no new leader for %s-%d after node %d was killed: %+v", topic, part, leader+1, st)
	}
	t.Logf("node %d killed; %s-%d now led by node %d, ISR %v", leader+1, topic, part, st.Leader, st.ISR)
	var alive []string
	for i, nd := range tc.c.Nodes {
		if i != leader {
			alive = append(alive, nd.Addr)
		}
	}
	adm := kadm.NewClient(newClient(t, alive[0], kgo.SeedBrokers(alive...)))
	var end int64 = -1
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			if o, ok := ends.Lookup(topic, part); ok && o.Err == nil {
				end = o.Offset
				if end >= n {
					break
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if end < n {
		t.Fatalf("%d acks=all writes were acknowledged and node %d, which held them all, is alive; "+
			"the new leader, node %d, has high watermark %d: the writes are lost", n, rest(st.ISR, 4), st.Leader, end)
	}
	rd := newClient(t, alive[0], kgo.SeedBrokers(alive...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().AtStart()}}))
	var got []int
	for len(got) < n && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			v, _ := strconv.Atoi(string(r.Value))
			got = append(got, v)
		})
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("record %d read back is %d; want the acknowledged writes in order, once each", i, v)
		}
	}
}

// rest is the first member of isr other than id, or -1.
func rest(isr []int32, id int32) int32 {
	for _, r := range isr {
		if r != id {
			return r
		}
	}
	return -1
}
