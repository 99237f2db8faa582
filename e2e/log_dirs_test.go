package e2e

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DescribeLogDirs, asked of every broker as kafka-log-dirs.sh and the
// admin clients' describeLogDirs do, reports each replica where it is:
// every node of a replication-factor-3 topic lists the partition in its
// data directory, with a size that grows as records are written and the
// volume's total and usable bytes.
func TestDescribeLogDirsReportsEveryReplicaWithItsSize(t *testing.T) {
	tc := startCluster(t, 3)
	waitBrokersListed(t, tc.seeds(), 3) // all registered: replication factor 3 can be placed
	adm := kadm.NewClient(newClient(t, strings.Join(tc.seeds(), ","), kgo.SeedBrokers(tc.seeds()...)))
	ctx := testCtx(t)
	if _, err := adm.CreateTopic(ctx, 2, 3, nil, "sized"); err != nil {
		t.Fatal(err)
	}
	sizes := func() map[int32]int64 {
		t.Helper()
		all, err := adm.DescribeAllLogDirs(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int32]int64{}
		for broker, dirs := range all {
			if err := dirs.Error(); err != nil {
				t.Fatalf("broker %d: %v", broker, err)
			}
			for _, d := range dirs {
				if d.TotalBytes <= 0 || d.UsableBytes <= 0 || d.UsableBytes > d.TotalBytes {
					t.Errorf("broker %d dir %s: total %d usable %d bytes", broker, d.Dir, d.TotalBytes, d.UsableBytes)
				}
				for _, p := range d.Topics["sized"] {
					got[broker] += p.Size
				}
			}
		}
		return got
	}
	// The replicas appear once the followers have opened them.
	deadline := time.Now().Add(30 * time.Second)
	before := sizes()
	for len(before) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("log dirs list the topic on brokers %v, want all 3", before)
		}
		time.Sleep(200 * time.Millisecond)
		before = sizes()
	}
	cl := newClient(t, strings.Join(tc.seeds(), ","), kgo.SeedBrokers(tc.seeds()...), kgo.DefaultProduceTopic("sized"),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	for range 50 {
		v := make([]byte, 1000)
		rand.Read(v)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Every replica catches up: each broker's size grows by at least
	// the records' bytes.
	deadline = time.Now().Add(30 * time.Second)
	for {
		after := sizes()
		grown := 0
		for b, n := range after {
			if n >= before[b]+50*1000 {
				grown++
			}
		}
		if grown == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 50 KB of records the replicas' sizes went from %v to %v", before, after)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// CreateTopics answers the replication factor the topic got, as `weir
// topic create` and kafka-topics.sh print it: the one asked for, or the
// cluster's default.replication.factor when the request leaves it to the
// broker (-1).
func TestCreateTopicsAnswersTheReplicationFactorTheTopicGot(t *testing.T) {
	tc := startCluster(t, 3, "--set", "default.replication.factor=3")
	waitBrokersListed(t, tc.seeds(), 3)
	adm := kadm.NewClient(newClient(t, strings.Join(tc.seeds(), ","), kgo.SeedBrokers(tc.seeds()...)))
	ctx := testCtx(t)
	for _, rf := range []int16{3, -1} {
		topic := fmt.Sprintf("rf%d", rf)
		resp, err := adm.CreateTopic(ctx, 1, rf, nil, topic)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ReplicationFactor != 3 {
			t.Errorf("CreateTopics with replication factor %d answered %d; the topic has 3 replicas", rf, resp.ReplicationFactor)
		}
		td, err := adm.ListTopics(ctx, topic)
		if err != nil || len(td[topic].Partitions) != 1 || len(td[topic].Partitions[0].Replicas) != 3 {
			t.Fatalf("topic %s: %+v (%v); want one partition of 3 replicas", topic, td[topic], err)
		}
	}
}
