package e2e

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Records DeleteRecords deleted never come back: once it answers with a
// low watermark, no replica that may lead the partition later still
// serves an offset below it (Kafka answers DeleteRecords only once the
// low watermark, the smallest log start of the replicas, reached the
// offset asked for, and gives REQUEST_TIMED_OUT otherwise).
//
// The interleaving: three nodes, the partition's replicas all in the
// ISR, followers long-polling at the leader's log end (a replica fetch
// with nothing to read waits replica.fetch.wait.max.ms, here 10 s).
// DeleteRecords before 60 moves the leader's log start while the
// followers, waiting in a fetch that began before it, still start at 0:
// they learn the new log start only from the answer to a fetch, and the
// DeleteRecords answer waits for them. The leader is killed right after
// the answer; the ISR follower elected serves nothing below 60, to
// ListOffsets (earliest) or to a consumer reading from the start.
func TestClusterDeletedRecordsNeverReappearAfterFailover(t *testing.T) {
	session := 2 * time.Second
	tc := startCluster(t, 3, "--set", "broker.session.timeout.ms=2000", "--set", "broker.heartbeat.interval.ms=300",
		"--set", "replica.fetch.wait.max.ms=10000", "--set", "replica.lag.time.max.ms=30000")
	ctrl := tc.waitController(15 * time.Second)
	const topic = "deleted"
	tc.createReplicated(ctrl, topic, 1, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seeds := tc.seeds()
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 100 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("acks=all record %d: %v", i, err)
		}
	}
	st, ok := tc.waitPartition(topic, 0, 30*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && len(st.ISR) == 3
	})
	if !ok {
		t.Fatalf("ISR of %s-0 never held all three replicas: %+v", topic, st)
	}
	leader := int(st.Leader - 1)
	// Let every follower's fetch settle into its wait at the log end.
	time.Sleep(time.Second)

	adm := kadm.NewClient(newClient(t, seeds[leader], kgo.SeedBrokers(seeds...)))
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 60})
	res, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := res.Lookup(topic, 0)
	if r.Err != nil || r.LowWatermark != 60 {
		t.Fatalf("delete records before 60: %+v", r)
	}
	tc.c.Kill(leader)

	next, ok := tc.waitPartition(topic, 0, 30*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && int(st.Leader-1) != leader
	})
	if !ok {
		t.Fatalf("no new leader for %s-0 after node %d was killed: %+v", topic, leader+1, next)
	}
	time.Sleep(session)
	var alive []string
	for i, nd := range tc.c.Nodes {
		if i != leader {
			alive = append(alive, nd.Addr)
		}
	}
	rd := newClient(t, alive[0], kgo.SeedBrokers(alive...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	starts, err := kadm.NewClient(rd).ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := starts.Lookup(topic, 0)
	var got []int
	for len(got) < 100-60 {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %v", got)
		}
		fs.EachRecord(func(r *kgo.Record) {
			v, _ := strconv.Atoi(string(r.Value))
			got = append(got, v)
		})
	}
	if o.Err != nil || o.Offset < 60 || slices.ContainsFunc(got, func(v int) bool { return v < 60 }) {
		t.Fatalf("after DeleteRecords answered low watermark 60 and its leader was killed, the new leader node %d "+
			"gives log start %d (err %v) and a reader from the start gets records %v...: deleted records are back",
			next.Leader, o.Offset, o.Err, got[:min(len(got), 5)])
	}
}
