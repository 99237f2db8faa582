package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/bench"
	"github.com/weir-broker/weir/internal/testsvc"
)

// What replication costs, measured on a cluster of three `weir serve`
// processes on this machine (scripts/bench-replication.sh runs these and
// prints the ratios BENCHMARKS.md reports). Not run by the test suite.
// WEIR_BENCH_DIR puts the nodes' data directories under another directory
// (a tmpfs such as /dev/shm leaves the broker's own costs).

// benchCluster starts three nodes with extra settings and returns them
// and every node's address.
func benchCluster(b *testing.B, extra ...string) (*testsvc.Cluster, []string) {
	b.Helper()
	dir := b.TempDir()
	if base := os.Getenv("WEIR_BENCH_DIR"); base != "" {
		// e.g. /dev/shm, to take the disk out of the comparison.
		d, err := os.MkdirTemp(base, "weir-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	c, err := testsvc.StartCluster(weirBin, dir, 3, extra...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Stop)
	var seeds []string
	for _, nd := range c.Nodes {
		seeds = append(seeds, nd.Addr)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A new client each time: one keeps answering from the metadata it
		// has.
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		bm, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		cancel()
		cl.Close()
		if err == nil && len(bm.Brokers) == 3 {
			return c, seeds
		}
		if time.Now().After(deadline) {
			for i := range c.Nodes {
				b.Logf("node %d log:\n%s", i+1, c.Log(i))
			}
			b.Fatalf("cluster not formed: %v %+v", err, bm)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BenchmarkReplicatedProduce produces b.N 100-byte records, acks=all and
// idempotent, from one client to a new 6-partition topic of replication
// factor 1 and of replication factor 3 (min.insync.replicas 2: every
// acknowledged record is fsynced on all three replicas while they are in
// sync), on one cluster, one after the other. broker-cpu-ns/record is the
// CPU time of the three processes together per record.
func BenchmarkReplicatedProduce(b *testing.B) {
	c, seeds := benchCluster(b)
	for _, rf := range []int16{1, 3} {
		b.Run("rf="+strconv.Itoa(int(rf)), func(b *testing.B) {
			topic := fmt.Sprintf("bench-rf%d-%d", rf, time.Now().UnixNano())
			adm := kadm.NewClient(newClient(b, seeds[0], kgo.SeedBrokers(seeds...)))
			minISR := strconv.Itoa(min(int(rf), 2))
			if _, err := adm.CreateTopic(context.Background(), 6, rf, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil {
				b.Fatal(err)
			}
			cpu := func() (total time.Duration) {
				for i := range c.Nodes {
					d, _ := c.CPU(i)
					total += d
				}
				return total
			}
			// Warm up: one acknowledged write per partition, so the
			// followers are fetching before the clock starts.
			warm := newClient(b, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			for p := range int32(6) {
				if err := warm.ProduceSync(context.Background(), &kgo.Record{Partition: p, Value: []byte("warm")}).FirstErr(); err != nil {
					b.Fatal(err)
				}
			}
			before := cpu()
			b.ResetTimer()
			res, err := bench.Produce(context.Background(), seeds, bench.ProduceOptions{Topic: topic, Records: b.N, RecordSize: 100})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((cpu()-before).Nanoseconds())/float64(b.N), "broker-cpu-ns/record")
			b.ReportMetric(res.RecordsPerSec(), "records/s")
			b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
		})
	}
}

// BenchmarkLeaderFailover measures, per failover, the time from the loss
// of a partition's leader to the first write acknowledged after it, with
// an idempotent acks=all producer sending a record every millisecond to a
// topic of replication factor 3 and min.insync.replicas 2. "sigkill"
// kills the leader, which the controller notices when its session ends
// (broker.session.timeout.ms, default 9 s; "sigkill-session-2s" sets it to
// 2 s); "sigterm" stops it, and controlled shutdown moves its
// leaderships before it exits. The node is restarted and back in the ISR
// before the next round.
func BenchmarkLeaderFailover(b *testing.B) {
	for _, tc := range []struct {
		name  string
		kill  func(c *testsvc.Cluster, i int)
		extra []string
	}{
		{"sigkill", (*testsvc.Cluster).Kill, nil},
		{"sigkill-session-2s", (*testsvc.Cluster).Kill, []string{"--set", "broker.session.timeout.ms=2000", "--set", "broker.heartbeat.interval.ms=300"}},
		{"sigterm", (*testsvc.Cluster).Terminate, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, seeds := benchCluster(b, tc.extra...)
			const topic = "failover"
			adm := kadm.NewClient(newClient(b, seeds[0], kgo.SeedBrokers(seeds...)))
			two := "2"
			if _, err := adm.CreateTopic(context.Background(), 1, 3, map[string]*string{"min.insync.replicas": &two}, topic); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				leader := waitFullISR(b, adm, topic)
				b.StartTimer()
				took := failoverOnce(b, seeds, topic, func() { tc.kill(c, int(leader-1)) })
				b.StopTimer()
				total += took
				if err := c.Start(int(leader - 1)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
		})
	}
}

// waitFullISR waits until partition 0 of topic has its three replicas in
// the ISR and returns its leader.
func waitFullISR(b *testing.B, adm *kadm.Client, topic string) int32 {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		tds, err := adm.ListTopics(ctx, topic)
		cancel()
		if err == nil {
			if p, ok := tds[topic].Partitions[0]; ok && p.Err == nil && p.Leader > 0 && len(p.ISR) == 3 && slices.Contains(p.ISR, p.Leader) {
				return p.Leader
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s-0 did not get three in-sync replicas: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// failoverOnce runs a producer, calls kill once acknowledgements flow,
// and returns the time from kill to the first acknowledgement of a record
// sent after it began: how long the partition took no write.
func failoverOnce(b *testing.B, seeds []string, topic string, kill func()) time.Duration {
	b.Helper()
	cl := newClient(b, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordRetries(1<<20), kgo.RecordDeliveryTimeout(2*time.Minute))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var killedAt, firstAfter time.Time
	acked := make(chan struct{}, 1)
	after := make(chan struct{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			sent := time.Now()
			cl.Produce(ctx, &kgo.Record{Value: []byte("x")}, func(_ *kgo.Record, err error) {
				if err != nil {
					return
				}
				now := time.Now()
				mu.Lock()
				defer mu.Unlock()
				select {
				case acked <- struct{}{}:
				default:
				}
				if !killedAt.IsZero() && firstAfter.IsZero() && sent.After(killedAt) {
					firstAfter = now
					close(after)
				}
			})
		}
	}()
	defer func() { close(stop); <-done }()
	<-acked
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	kill()
	select {
	case <-after:
	case <-ctx.Done():
		b.Fatal("no write acknowledged after the leader was lost")
	}
	mu.Lock()
	defer mu.Unlock()
	return firstAfter.Sub(killedAt)
}
