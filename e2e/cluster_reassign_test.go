package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Partition reassignment (KIP-455) in a three-node cluster: replicas
// move between brokers while clients run, and a cancel returns to the
// assignment before the move.

// reassignSettings make fencing and ISR changes quick.
var reassignSettings = []string{"--set", "broker.session.timeout.ms=2000", "--set", "broker.heartbeat.interval.ms=300",
	"--set", "replica.lag.time.max.ms=2000"}

// readPartitionToEnd reads partition 0 of topic from addr, from its start up to
// its high watermark as of the call.
func readPartitionToEnd(t *testing.T, addr, topic string) []*kgo.Record {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, ok := ends.Lookup(topic, 0)
	if !ok || end.Err != nil {
		t.Fatalf("end offset of %s-0: %+v", topic, end)
	}
	var out []*kgo.Record
	if end.Offset == 0 {
		return out
	}
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d records of %s-0, up to offset %d: %v", len(out), topic, end.Offset, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		for _, r := range fs.Records() {
			out = append(out, r)
			if r.Offset+1 >= end.Offset {
				return out
			}
		}
	}
}

// checkExactlyOnce fails unless every acknowledged value is among recs
// exactly once, and recs are in the order they were produced.
func checkExactlyOnce(t *testing.T, recs []*kgo.Record, acked []int) {
	t.Helper()
	seen := map[int]int{}
	last := -1
	for _, r := range recs {
		v, err := strconv.Atoi(string(r.Value))
		if err != nil {
			t.Fatalf("record at %d holds %q", r.Offset, r.Value)
		}
		if v <= last {
			t.Fatalf("record %d read after %d: out of order", v, last)
		}
		last = v
		seen[v]++
	}
	for _, v := range acked {
		if seen[v] != 1 {
			t.Fatalf("acknowledged record %d read %d times; want once (%d acknowledged, %d read)", v, seen[v], len(acked), len(recs))
		}
	}
}

// A partition with one replica is moved to the two other brokers while
// an idempotent acks=all producer runs: `weir topic reassign --wait`
// returns once the move is done; the partition is then led by a new
// replica with both in the ISR, nothing is left in progress, the old
// broker has deleted its copy, and every acknowledged record is read
// back exactly once, in order, from each new replica.
func TestClusterReassignmentMovesAPartitionWhileAnIdempotentProducerRuns(t *testing.T) {
	tc := startCluster(t, 3, reassignSettings...)
	ctrl := tc.waitController(15 * time.Second)
	const topic = "moving"
	tc.createReplicated(ctrl, topic, 1, 1, 1)
	st, ok := tc.waitPartition(topic, 0, 10*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool { return st.Leader > 0 })
	if !ok || len(st.Replicas) != 1 {
		t.Fatalf("new topic: %+v", st)
	}
	src := st.Leader
	var targets []int32
	for id := int32(1); id <= 3; id++ {
		if id != src {
			targets = append(targets, id)
		}
	}
	seeds := tc.seeds()
	pctx, pcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer pcancel()
	sp := startSteadyProducer(t, pctx, seeds, topic, 0, 60*time.Second)
	acked, stop := sp.ackedCount, sp.stop
	poll(t, 20*time.Second, func() string {
		if n := acked(); n < 300 {
			return fmt.Sprintf("%d records acknowledged before the move; want 300", n)
		}
		return ""
	})
	move := fmt.Sprintf("%s:0=%d,%d", topic, targets[0], targets[1])
	began := time.Now()
	out, err := runWeir(t, "", "topic", "reassign", "--wait", "--wait-timeout=40s", move, "--brokers="+strings.Join(seeds, ","))
	if err != nil {
		t.Fatalf("weir topic reassign %s: %v\n%s", move, err, out)
	}
	if want := fmt.Sprintf("reassignment of %s-0 done: replicas %d,%d", topic, targets[0], targets[1]); !strings.Contains(out, want) {
		t.Fatalf("reassign printed %q; want %q", out, want)
	}
	n := acked()
	t.Logf("move done in %v, %d records acknowledged by then", time.Since(began).Round(time.Millisecond), n)
	poll(t, 20*time.Second, func() string {
		if acked() < n+200 {
			return "the producer acknowledged nothing more after the move"
		}
		return ""
	})
	want := stop()
	t.Logf("%d records acknowledged, moved from broker %d to %v", len(want), src, targets)

	st, ok = tc.waitPartition(topic, 0, 20*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return slices.Equal(st.Replicas, targets) && len(st.ISR) == 2 && slices.Contains(targets, st.Leader)
	})
	if !ok {
		t.Fatalf("after the move: %+v; want replicas %v, both in the ISR, one of them leading", st, targets)
	}
	adm := kadm.NewClient(newClient(t, seeds[0], kgo.SeedBrokers(seeds...)))
	ctx := testCtx(t)
	listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || len(listed) != 0 {
		t.Fatalf("reassignments in progress after the move: %+v (%v)", listed, err)
	}
	dir := filepath.Join(tc.c.Nodes[src-1].DataDir, topic+"-0")
	poll(t, 20*time.Second, func() string {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("broker %d still has %s (%v)", src, dir, err)
		}
		return ""
	})
	// The old broker answers for the partition as a non-replica does.
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	resp, err := tc.request(int(src-1), lo, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("old broker answered ListOffsets with %v; want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}

	leader := st.Leader
	checkExactlyOnce(t, readPartitionToEnd(t, tc.c.Nodes[leader-1].Addr, topic), want)
	// The other new replica holds it all too: with the leader killed, it
	// leads and serves the same records.
	other := targets[0]
	if other == leader {
		other = targets[1]
	}
	tc.c.Kill(int(leader - 1))
	if st, ok := tc.waitPartition(topic, 0, 30*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool { return st.Leader == other }); !ok {
		t.Fatalf("with leader %d killed: %+v; want %d to lead", leader, st, other)
	}
	checkExactlyOnce(t, readPartitionToEnd(t, tc.c.Nodes[other-1].Addr, topic), want)
}

// A move to a broker that is down cannot complete; cancelling it returns
// the partition to its original replica, which kept its data and goes on
// taking writes.
func TestClusterReassignmentCancelRestoresTheOriginalAssignment(t *testing.T) {
	tc := startCluster(t, 3, reassignSettings...)
	ctrl := tc.waitController(15 * time.Second)
	const topic = "staying"
	tc.createReplicated(ctrl, topic, 1, 1, 1)
	st, ok := tc.waitPartition(topic, 0, 10*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool { return st.Leader > 0 })
	if !ok {
		t.Fatalf("new topic: %+v", st)
	}
	src := st.Leader
	// The broker to move to, and kill: not the source, and not the
	// controller when there is a choice, so the quorum keeps its leader.
	dead := int32(-1)
	for id := int32(1); id <= 3; id++ {
		if id != src && (dead < 0 || dead == int32(ctrl+1)) {
			dead = id
		}
	}
	seeds := tc.seeds()
	brokers := "--brokers=" + strings.Join(seeds, ",")
	ctx := testCtx(t)
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	var want []int
	for i := range 50 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		want = append(want, i)
	}
	tc.c.Kill(int(dead - 1))

	adm := kadm.NewClient(newClient(t, seeds[0], kgo.SeedBrokers(seeds...)))
	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign(topic, 0, []int32{dead})
	resps, err := adm.AlterPartitionAssignments(ctx, req)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("move to broker %d: %v", dead, err)
	}
	listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
	r, inProgress := listed[topic][0]
	if err != nil || !inProgress || !slices.Equal(r.Replicas, []int32{dead, src}) || !slices.Equal(r.AddingReplicas, []int32{dead}) ||
		!slices.Equal(r.RemovingReplicas, []int32{src}) {
		t.Fatalf("move in progress listed as %+v (%v); want replicas [%d %d], adding [%d], removing [%d]", listed, err, dead, src, dead, src)
	}
	out, err := runWeir(t, "", "topic", "reassign", "--list", brokers)
	wantRow := []string{topic, "0", fmt.Sprintf("%d,%d", dead, src), strconv.Itoa(int(dead)), strconv.Itoa(int(src))}
	if err != nil || !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool { return slices.Equal(strings.Fields(l), wantRow) }) {
		t.Fatalf("weir topic reassign --list: %v\n%s\nwant the row %v", err, out, wantRow)
	}
	if st, ok := tc.partitionState(ctrl, topic, 0); !ok || st.Leader != src || !slices.Equal(st.Replicas, []int32{dead, src}) {
		t.Fatalf("during the move: %+v; want %d leading replicas [%d %d]", st, src, dead, src)
	}

	out, err = runWeir(t, "", "topic", "reassign", "--cancel", "--wait", "--wait-timeout=20s", topic+":0", brokers)
	if err != nil || !strings.Contains(out, "cancelled the reassignment of "+topic+"-0") {
		t.Fatalf("weir topic reassign --cancel: %v\n%s", err, out)
	}
	if st, ok := tc.waitPartition(topic, 0, 10*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader == src && slices.Equal(st.Replicas, []int32{src}) && slices.Equal(st.ISR, []int32{src})
	}); !ok {
		t.Fatalf("after the cancel: %+v; want replicas and ISR [%d], led by it", st, src)
	}
	if listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}}); err != nil || len(listed) != 0 {
		t.Fatalf("reassignments after the cancel: %+v (%v)", listed, err)
	}
	// Only the active controller answers; another node sends the client
	// there (franz-go retries NOT_CONTROLLER at the controller Metadata
	// names).
	ctrl = tc.waitController(15 * time.Second)
	for i := range tc.c.Nodes {
		if i == ctrl || !tc.c.Running(i) {
			continue
		}
		resp, err := tc.request(i, kmsg.NewPtrListPartitionReassignmentsRequest(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.(*kmsg.ListPartitionReassignmentsResponse).ErrorCode; code != kerr.NotController.Code {
			t.Fatalf("node %d, not the controller, answered ListPartitionReassignments with %v; want NOT_CONTROLLER", i+1, kerr.ErrorForCode(code))
		}
	}
	if resps, err := adm.AlterPartitionAssignments(ctx, kadm.AlterPartitionAssignmentsReq{topic: {0: nil}}); err != nil ||
		!errors.Is(resps[topic][0].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("a second cancel: %+v (%v); want NO_REASSIGNMENT_IN_PROGRESS", resps, err)
	}
	for i := 50; i < 60; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("write after the cancel: %v", err)
		}
		want = append(want, i)
	}
	checkExactlyOnce(t, readPartitionToEnd(t, tc.c.Nodes[src-1].Addr, topic), want)
}

// A replica added to a partition whose log start has moved (DeleteRecords
// here; retention alike) finds the records below it gone on the leader:
// it starts its log at the leader's log start, catches up from there and
// completes the move, and then serves exactly the records left.
func TestClusterReassignedReplicaStartsAtTheLeadersLogStart(t *testing.T) {
	tc := startCluster(t, 3, reassignSettings...)
	ctrl := tc.waitController(15 * time.Second)
	const topic = "trimmed"
	tc.createReplicated(ctrl, topic, 1, 1, 1)
	st, ok := tc.waitPartition(topic, 0, 10*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool { return st.Leader > 0 })
	if !ok {
		t.Fatalf("new topic: %+v", st)
	}
	src := st.Leader
	dst := src%3 + 1
	seeds := tc.seeds()
	ctx := testCtx(t)
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	for i := range 100 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(newClient(t, seeds[0], kgo.SeedBrokers(seeds...)))
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 60})
	if dr, err := adm.DeleteRecords(ctx, offs); err != nil {
		t.Fatal(err)
	} else if r, _ := dr.Lookup(topic, 0); r.Err != nil || r.LowWatermark != 60 {
		t.Fatalf("delete records below 60: %+v", r)
	}
	out, err := runWeir(t, "", "topic", "reassign", "--wait", "--wait-timeout=30s", fmt.Sprintf("%s:0=%d", topic, dst), "--brokers="+strings.Join(seeds, ","))
	if err != nil {
		t.Fatalf("move to broker %d: %v\n%s", dst, err, out)
	}
	if st, ok := tc.waitPartition(topic, 0, 10*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader == dst && slices.Equal(st.Replicas, []int32{dst})
	}); !ok {
		t.Fatalf("after the move: %+v; want broker %d alone", st, dst)
	}
	recs := readPartitionToEnd(t, tc.c.Nodes[dst-1].Addr, topic)
	if len(recs) != 40 || recs[0].Offset != 60 || string(recs[0].Value) != "60" || string(recs[39].Value) != "99" {
		t.Fatalf("new replica serves %d records from offset %d; want the 40 from offset 60", len(recs), recs[0].Offset)
	}
}

// A replica moved away while its broker is down deletes its copy once
// the broker is back and has learnt of the move.
func TestClusterReplicaRemovedWhileItsBrokerIsDownDeletesItsCopyOnReturn(t *testing.T) {
	tc := startCluster(t, 3, reassignSettings...)
	ctrl := tc.waitController(15 * time.Second)
	const topic = "left"
	tc.createReplicated(ctrl, topic, 1, 2, 1)
	st, ok := tc.waitPartition(topic, 0, 10*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && len(st.ISR) == 2
	})
	if !ok {
		t.Fatalf("new topic: %+v", st)
	}
	leader := st.Leader
	var gone, third int32
	for id := int32(1); id <= 3; id++ {
		switch {
		case id == leader:
		case slices.Contains(st.Replicas, id):
			gone = id
		default:
			third = id
		}
	}
	seeds := tc.seeds()
	ctx := testCtx(t)
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	for i := range 50 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(tc.c.Nodes[gone-1].DataDir, topic+"-0")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("follower %d holds no copy before the move: %v", gone, err)
	}
	tc.c.Kill(int(gone - 1))
	tc.waitController(30 * time.Second)
	out, err := runWeir(t, "", "topic", "reassign", "--wait", "--wait-timeout=30s", fmt.Sprintf("%s:0=%d,%d", topic, leader, third),
		"--brokers="+strings.Join(seeds, ","))
	if err != nil {
		t.Fatalf("move from broker %d to %d: %v\n%s", gone, third, err, out)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the copy of the stopped broker changed while it was down: %v", err)
	}
	if err := tc.c.Start(int(gone - 1)); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, func() string {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("broker %d, back, still has %s (%v)", gone, dir, err)
		}
		return ""
	})
	recs := readPartitionToEnd(t, tc.c.Nodes[third-1].Addr, topic)
	if len(recs) != 50 {
		t.Fatalf("read %d records; want 50", len(recs))
	}
}
