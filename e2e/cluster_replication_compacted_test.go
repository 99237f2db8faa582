package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A follower that was down while its leader compacted catches up and
// rejoins the ISR. Compaction folds a batch whose records all went into
// the batch before it (internal/log/compact.go), so the follower's log
// end can fall inside a leader batch; the follower cuts its log back to
// where that batch starts and takes it whole. __consumer_offsets and
// __transaction_state are compacted, replicated topics too.
func TestClusterReplicationFollowerCatchesUpOnACompactedTopic(t *testing.T) {
	session := 2 * time.Second
	tc := startCluster(t, 3, "--set", fmt.Sprintf("broker.session.timeout.ms=%d", session.Milliseconds()),
		"--set", "broker.heartbeat.interval.ms=300", "--set", "replica.lag.time.max.ms=2000",
		"--set", "log.cleaner.backoff.ms=300")
	ctrl := tc.waitController(15 * time.Second)
	const topic = "compacted"
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 3
	for k, v := range map[string]string{"min.insync.replicas": "2", "cleanup.policy": "compact", "segment.bytes": "1024"} {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(ctrl, req, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode); err != nil {
		t.Fatal(err)
	}
	seeds := tc.seeds()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(100), kgo.MaxBufferedRecords(1))
	produce := func(key string, v int) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: []byte(strconv.Itoa(v))}).FirstErr(); err != nil {
			t.Fatalf("produce %s=%d: %v", key, v, err)
		}
	}
	for i := range 10 {
		produce("u"+strconv.Itoa(i), i)
	}
	st, ok := tc.waitPartition(topic, 0, 10*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool { return st.Leader > 0 && len(st.ISR) == 3 })
	if !ok {
		t.Fatalf("ISR never full: %+v", st)
	}
	leader := int(st.Leader - 1)
	follower := (leader + 1) % 3
	if follower == ctrl {
		follower = (leader + 2) % 3
	}
	t.Logf("leader node %d; killing follower node %d at offset 10", leader+1, follower+1)
	tc.c.Kill(follower)
	if st, ok = tc.waitPartition(topic, 0, 15*time.Second, func(st kmsg.MetadataResponseTopicPartition) bool { return len(st.ISR) == 2 }); !ok {
		t.Fatalf("ISR did not shrink: %+v", st)
	}
	for i := range 200 {
		produce("dup", i)
	}
	compacted := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !compacted; time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(tc.c.Nodes[leader].LogPath)
		compacted = strings.Contains(string(b), "log cleaner compacted")
	}
	if !compacted {
		t.Fatalf("the leader never compacted")
	}
	if err := tc.c.Start(follower); err != nil {
		t.Fatal(err)
	}
	// Ask the leader (a restarted node may answer from its old image).
	ok = false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(200 * time.Millisecond) {
		st, _ = tc.partitionState(leader, topic, 0)
		ok = len(st.ISR) == 3
	}
	for _, i := range []int{leader, follower} {
		b, _ := os.ReadFile(tc.c.Nodes[i].LogPath)
		s := ""
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "cleaner") || strings.Contains(line, "replica append") && !strings.Contains(s, "replica append") {
				t.Logf("node %d: %s", i+1, line)
				if strings.Contains(line, "replica append") {
					s = line
				}
			}
		}
	}
	if !ok {
		t.Fatalf("follower node %d never rejoined the ISR of the compacted topic in 20 s: %+v", follower+1, st)
	}
}
