package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// waitPartition polls the running nodes until cond holds for partition p
// of topic, and returns the state it held for.
func (tc *testCluster) waitPartition(topic string, p int32, within time.Duration, cond func(kmsg.MetadataResponseTopicPartition) bool) (kmsg.MetadataResponseTopicPartition, bool) {
	deadline := time.Now().Add(within)
	var last kmsg.MetadataResponseTopicPartition
	for time.Now().Before(deadline) {
		for i := range tc.c.Nodes {
			if !tc.c.Running(i) {
				continue
			}
			if st, ok := tc.partitionState(i, topic, p); ok {
				last = st
				if cond(st) {
					return st, true
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last, false
}

// A replica that led an epoch in which it wrote nothing (it was elected,
// then killed before any produce reached it) follows the next leader and
// rejoins the ISR once restarted: the empty epoch at its log end, which
// no other replica knows of, is dropped when the leader's answer says its
// log diverges exactly at its end, instead of diverging the same way on
// every fetch.
func TestClusterReplicationLeaderOfEmptyEpochRejoinsISR(t *testing.T) {
	session := 2 * time.Second
	tc := startCluster(t, 3, "--set", fmt.Sprintf("broker.session.timeout.ms=%d", session.Milliseconds()),
		"--set", "broker.heartbeat.interval.ms=300", "--set", "replica.lag.time.max.ms=3000")
	ctrl := tc.waitController(15 * time.Second)
	const topic = "emptyepoch"
	tc.createReplicated(ctrl, topic, 1, 3, 2)
	seeds := tc.seeds()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := func(from, n int) {
		cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1000), kgo.RecordDeliveryTimeout(20*time.Second))
		defer cl.Close()
		for i := from; i < from+n; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatalf("acks=all record %d: %v", i, err)
			}
		}
	}
	produce(0, 20)
	full := func(st kmsg.MetadataResponseTopicPartition) bool { return st.Leader > 0 && len(st.ISR) == 3 }
	st, ok := tc.waitPartition(topic, 0, 10*time.Second, full)
	if !ok {
		t.Fatalf("ISR never full: %+v", st)
	}
	a := int(st.Leader - 1)
	t.Logf("leader node %d epoch %d ISR %v; killing it", a+1, st.LeaderEpoch, st.ISR)
	tc.c.Kill(a)
	st, ok = tc.waitPartition(topic, 0, 15*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && int(st.Leader-1) != a
	})
	if !ok {
		t.Fatalf("no new leader after killing node %d: %+v", a+1, st)
	}
	b := int(st.Leader - 1)
	t.Logf("new leader node %d epoch %d ISR %v; nothing produced in its epoch", b+1, st.LeaderEpoch, st.ISR)
	if err := tc.c.Start(a); err != nil {
		t.Fatal(err)
	}
	tc.waitController(20 * time.Second)
	st, ok = tc.waitPartition(topic, 0, 15*time.Second, full)
	if !ok {
		t.Fatalf("node %d did not rejoin the ISR after its restart: %+v", a+1, st)
	}
	if int(st.Leader-1) != b {
		t.Skipf("leader moved to node %d meanwhile", st.Leader)
	}
	t.Logf("ISR full again %v under leader node %d epoch %d; killing the leader, which wrote nothing in its epoch", st.ISR, st.Leader, st.LeaderEpoch)
	tc.c.Kill(b)
	st, ok = tc.waitPartition(topic, 0, 15*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && int(st.Leader-1) != b
	})
	if !ok {
		t.Fatalf("no new leader after killing node %d: %+v", b+1, st)
	}
	t.Logf("new leader node %d epoch %d ISR %v", st.Leader, st.LeaderEpoch, st.ISR)
	if err := tc.c.Start(b); err != nil {
		t.Fatal(err)
	}
	tc.waitController(20 * time.Second)
	produce(20, 20)
	st, ok = tc.waitPartition(topic, 0, 15*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return slices.Contains(st.ISR, int32(b+1))
	})
	if !ok {
		t.Fatalf("node %d, restarted and alive, never rejoined the ISR of %s-0 in 15 s (state %+v): it led epoch with no batch and cannot follow the next leader", b+1, topic, st)
	}
}
