package e2e

import (
	"context"
	"encoding/binary"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// A follower that was away while its leader deleted records rejoins the
// ISR also when DeleteRecords put the log start inside a batch: clients
// send many records per batch, and DeleteRecords takes any offset (a
// consumer's position, say).
//
// The interleaving: three nodes, one follower killed. 200 records go to
// the leader in batches of many records (franz-go batches what is
// produced at once). DeleteRecords before 101, an offset inside a batch.
// The follower is started again: its log ends below the leader's log
// start, so it starts its log again at 101 and fetches there; the leader
// answers with the batch holding 101, which starts below it; the
// follower starts its log again at the batch's start, takes the batch
// whole, catches up and rejoins the ISR.
func TestClusterFollowerRestartedInsideALeadersBatchRejoinsISR(t *testing.T) {
	tc := startCluster(t, 3, "--set", "broker.session.timeout.ms=2000", "--set", "broker.heartbeat.interval.ms=300",
		"--set", "replica.lag.time.max.ms=2000")
	ctrl := tc.waitController(15 * time.Second)
	const topic = "logstartbatch"
	tc.createReplicated(ctrl, topic, 1, 3, 1)
	st, _ := tc.partitionState(ctrl, topic, 0)
	leader := int(st.Leader - 1)
	behind := (leader + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seeds := tc.seeds()
	cl := newClient(t, seeds[leader], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(50*time.Millisecond))
	adm := kadm.NewClient(cl)

	tc.c.Kill(behind)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range 200 {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	// The batch holding 101 must start below it, or this tests nothing.
	raw := newClient(t, seeds[leader], kgo.MaxVersions(kversion.V2_8_0()))
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MaxBytes = -1, 100, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 101, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || len(resp.Topics[0].Partitions[0].RecordBatches) < 8 {
		t.Fatalf("setup: fetch at 101 from the leader: %+v", resp)
	}
	if base := int64(binary.BigEndian.Uint64(resp.Topics[0].Partitions[0].RecordBatches)); base >= 101 {
		t.Fatalf("setup: the batch holding 101 starts at %d, not below it", base)
	}
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 101})
	res, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup(topic, 0); r.Err != nil || r.LowWatermark != 101 {
		t.Fatalf("delete records before 101: %+v", r)
	}
	if err := tc.c.Start(behind); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, ok := tc.partitionState(leader, topic, 0)
		if ok && slices.Contains(cur.ISR, int32(behind+1)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d, restarted with a log ending below the leader's log start 101 (inside a batch), "+
				"did not rejoin the ISR within 30 s: %+v", behind+1, cur)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
