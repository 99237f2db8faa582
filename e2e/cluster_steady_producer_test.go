package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/testsvc"
)

// What the failure-injection tests of a replicated partition share: an
// idempotent acks=all producer that runs throughout a fault and remembers
// what it was told is written, the check that every such record is read
// back exactly once and in order, and a comparison of the replicas' logs
// on disk.

// steadyProducer is an idempotent acks=all franz-go producer writing
// numbered records (values "0", "1", ...) to one partition until stopped.
type steadyProducer struct {
	t     *testing.T
	cl    *kgo.Client
	ctx   context.Context
	stopc chan struct{}
	done  chan struct{}

	mu    sync.Mutex
	acked []int
	// errs counts records the client gave up on: not acknowledged, so
	// not owed to the reader, but reported to tell a stall from a loss.
	errs int
}

// startSteadyProducer starts producing to partition p of topic through
// the brokers at seeds, one record every 2 ms. ctx bounds the producer's
// life; a record not acknowledged within deliveryTimeout is given up.
func startSteadyProducer(t *testing.T, ctx context.Context, seeds []string, topic string, p int32, deliveryTimeout time.Duration) *steadyProducer {
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordRetries(1000), kgo.RecordDeliveryTimeout(deliveryTimeout),
		// A frozen or cut-off leader answers nothing: give up on a request
		// to it in seconds, not the default twenty, and retry elsewhere.
		kgo.ProduceRequestTimeout(5*time.Second), kgo.RequestTimeoutOverhead(3*time.Second),
		// A cut-off leader that is still reachable answers
		// REQUEST_TIMED_OUT, on which franz-go (like the Java client)
		// retries the same broker without asking for metadata; only a
		// periodic refresh that happens to ask a node of the majority
		// moves it to the new leader. Refresh every second, not every five
		// minutes; a stale answer from the old leader carries a lower
		// leader epoch and is ignored (KIP-320).
		kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	sp := &steadyProducer{t: t, cl: cl, ctx: ctx, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sp.done)
		for i := 0; ; i++ {
			select {
			case <-sp.stopc:
				return
			case <-ctx.Done():
				return
			default:
			}
			cl.Produce(ctx, &kgo.Record{Partition: p, Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
				sp.mu.Lock()
				defer sp.mu.Unlock()
				if err == nil {
					sp.acked = append(sp.acked, i)
				} else {
					sp.errs++
				}
			})
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return sp
}

// ackedCount is how many records were acknowledged so far.
func (sp *steadyProducer) ackedCount() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return len(sp.acked)
}

// waitAcked waits until at least n more records than now are
// acknowledged: the partition takes writes.
func (sp *steadyProducer) waitAcked(n int, within time.Duration) {
	sp.t.Helper()
	want := sp.ackedCount() + n
	deadline := time.Now().Add(within)
	for sp.ackedCount() < want {
		if time.Now().After(deadline) {
			sp.t.Fatalf("the producer had %d records acknowledged after %v, want %d", sp.ackedCount(), within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the producer, waits for every record in flight to be
// answered, and returns the values acknowledged, in the order produced.
func (sp *steadyProducer) stop() []int {
	sp.t.Helper()
	close(sp.stopc)
	<-sp.done
	if err := sp.cl.Flush(sp.ctx); err != nil {
		sp.t.Fatalf("flushing the producer: %v", err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.acked) == 0 {
		sp.t.Fatal("nothing was acknowledged")
	}
	sp.t.Logf("%d records acknowledged, %d given up", len(sp.acked), sp.errs)
	acked := slices.Clone(sp.acked)
	sort.Ints(acked)
	return acked
}

// checkAckedReadOnceInOrder reads partition p of topic from the start
// through addr and fails the test unless every acknowledged value is read
// exactly once and the values read increase.
func checkAckedReadOnceInOrder(t *testing.T, addr, topic string, p int32, acked []int) {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[int]bool{}
	for _, v := range acked {
		want[v] = true
	}
	var recs []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d acknowledged records not read back (e.g. %d)", len(want), len(acked), anyKey(want))
		}
		for _, r := range fs.Records() {
			recs = append(recs, r)
			if v, err := strconv.Atoi(string(r.Value)); err == nil {
				delete(want, v)
			}
		}
	}
	checkExactlyOnce(t, recs, acked)
}

func anyKey(m map[int]bool) int {
	for k := range m {
		return k
	}
	return -1
}

// replacedLeader is a waitPartition condition: partition p is led by a
// node other than old, at an epoch above oldEpoch.
func replacedLeader(old int, oldEpoch int32) func(kmsg.MetadataResponseTopicPartition) bool {
	return func(st kmsg.MetadataResponseTopicPartition) bool {
		return st.Leader > 0 && int(st.Leader-1) != old && st.LeaderEpoch > oldEpoch
	}
}

// waitLeaderElsewhere waits until a node names a leader of partition p
// other than old, at an epoch above oldEpoch, and returns that leader's
// index.
func (tc *testCluster) waitLeaderElsewhere(topic string, p int32, old int, oldEpoch int32, within time.Duration) int {
	tc.t.Helper()
	st, ok := tc.waitPartition(topic, p, within, replacedLeader(old, oldEpoch))
	if !ok {
		tc.t.Fatalf("no new leader of %s-%d within %v (old leader node %d, epoch %d; last seen %+v)", topic, p, within, old+1, oldEpoch, st)
	}
	return int(st.Leader - 1)
}

// waitFullISR waits until node i lists every replica of partition p in
// its ISR.
func (tc *testCluster) waitFullISR(i int, topic string, p int32, within time.Duration) kmsg.MetadataResponseTopicPartition {
	tc.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, ok := tc.partitionState(i, topic, p)
		if ok && len(st.Replicas) > 0 && len(st.ISR) == len(st.Replicas) {
			return st
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("%s-%d: the ISR is %v of replicas %v after %v", topic, p, st.ISR, st.Replicas, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// diskBatch is one record batch as a replica stores it.
type diskBatch struct {
	base int64
	raw  []byte
}

// replicaLog reads the record batches of partition p of topic from node
// i's data directory, segment by segment. A batch only partly written yet
// ends the read.
func replicaLog(nd *testsvc.Node, topic string, p int32) ([]diskBatch, error) {
	dir := filepath.Join(nd.DataDir, topic+"-"+strconv.Itoa(int(p)))
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(segs) // zero-padded base offsets sort as numbers
	var out []diskBatch
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed by retention or truncation meanwhile
			}
			return nil, err
		}
		for len(b) >= 12 {
			size := int(binary.BigEndian.Uint32(b[8:12]))
			if size == 0 || 12+size > len(b) {
				break
			}
			out = append(out, diskBatch{base: int64(binary.BigEndian.Uint64(b[:8])), raw: b[:12+size]})
			b = b[12+size:]
		}
	}
	return out, nil
}

// logsDiffer compares the logs of partition p on every node and returns
// where they differ, or "" when every replica holds the same batches at
// the same offsets.
func (tc *testCluster) logsDiffer(topic string, p int32) string {
	var first []diskBatch
	for i, nd := range tc.c.Nodes {
		got, err := replicaLog(nd, topic, p)
		if err != nil {
			return err.Error()
		}
		if i == 0 {
			first = got
			continue
		}
		if len(got) != len(first) {
			return fmt.Sprintf("node 1 holds %d batches, node %d holds %d", len(first), i+1, len(got))
		}
		for k := range got {
			if got[k].base != first[k].base || !bytes.Equal(got[k].raw, first[k].raw) {
				return fmt.Sprintf("batch %d: node 1 holds one at offset %d, node %d a different one at offset %d", k, first[k].base, i+1, got[k].base)
			}
		}
	}
	return ""
}

// waitIdenticalLogs waits until every replica of partition p holds the
// same batches at the same offsets on disk.
func (tc *testCluster) waitIdenticalLogs(topic string, p int32, within time.Duration) {
	tc.t.Helper()
	deadline := time.Now().Add(within)
	for {
		diff := tc.logsDiffer(topic, p)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("the replicas of %s-%d still differ after %v: %s", topic, p, within, diff)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
