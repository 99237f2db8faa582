package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Coordinators fail over: with __transaction_state and __consumer_offsets
// replicated to every node (their replication factor defaults to
// min(3, brokers)), the node coordinating a transaction in flight, or a
// consumer group in the middle of a rebalance, is killed with SIGKILL.
// Another replica of the coordinator's partition takes over and replays
// its state: the transaction commits or aborts as a whole and its id
// works again; the group's committed offsets are intact and it resumes
// from them.

// failoverSettings fence a silent node within seconds, so another replica
// of the coordinator's partition leads soon after the kill.
var failoverSettings = []string{"--set", "broker.session.timeout.ms=2000",
	"--set", "broker.heartbeat.interval.ms=300", "--set", "replica.lag.time.max.ms=3000",
	"--set", "group.initial.rebalance.delay.ms=0"}

// keyCoordinatedAwayFrom returns a key starting with prefix whose
// coordinator (keyType 0: group, 1: transactional id) is not node ctrl,
// the active controller, so the kill moves the coordinator alone; and
// that coordinator's node index.
func (tc *testCluster) keyCoordinatedAwayFrom(ctrl int, keyType int8, prefix string) (string, int) {
	tc.t.Helper()
	for k := range 100 {
		key := prefix + strconv.Itoa(k)
		if node := tc.coordinatorOf(ctrl, keyType, key); int(node-1) != ctrl {
			return key, int(node - 1)
		}
	}
	tc.t.Fatalf("no key %s* coordinated by a node other than the controller", prefix)
	return "", -1
}

// survivorSeeds lists the Kafka addresses of every node but dead.
func (tc *testCluster) survivorSeeds(dead int) []string {
	var out []string
	for i, nd := range tc.c.Nodes {
		if i != dead {
			out = append(out, nd.Addr)
		}
	}
	return out
}

func TestClusterTransactionInFlightCommitsOrAbortsWholeWhenItsCoordinatorIsKilled(t *testing.T) {
	tc := startCluster(t, 3, failoverSettings...)
	ctrl := tc.waitController(15 * time.Second)
	const topic, parts = "txn-failover", 6
	tc.createReplicated(ctrl, topic, parts, 3, 2)
	id, coord := tc.keyCoordinatedAwayFrom(ctrl, 1, "failover-txn-")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	newProducer := func() *kgo.Client {
		return newClient(t, tc.c.Nodes[ctrl].Addr, kgo.SeedBrokers(tc.survivorSeeds(coord)...), kgo.TransactionalID(id),
			kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.TransactionTimeout(60*time.Second), kgo.RequestTimeoutOverhead(3*time.Second))
	}
	// A transaction over every partition, produced (acknowledged by the
	// leaders) but not committed.
	first := newProducer()
	if err := first.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	const perPartition = 10
	for i := range parts * perPartition {
		r := &kgo.Record{Partition: int32(i % parts), Value: []byte("first-" + strconv.Itoa(i))}
		if err := first.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("transactional record %d: %v", i, err)
		}
	}
	t.Logf("killing node %d, coordinator of %s, with a transaction of %d records open", coord+1, id, parts*perPartition)
	tc.c.Kill(coord)

	// The commit goes to whichever replica of the coordinator's partition
	// leads next; it either commits or fails, and then the transaction is
	// aborted.
	ectx, ecancel := context.WithTimeout(ctx, 45*time.Second)
	commitErr := first.EndTransaction(ectx, kgo.TryCommit)
	ecancel()
	t.Logf("commit after the kill: %v", commitErr)
	if commitErr != nil {
		actx, acancel := context.WithTimeout(ctx, 20*time.Second)
		if err := first.AbortBufferedRecords(actx); err != nil {
			t.Logf("dropping what the first producer still buffers: %v", err)
		}
		acancel()
	}
	first.Close()

	// A new producer with the same id starts (fencing the first, and
	// aborting its transaction if it is still open) and commits one record
	// per partition.
	second := newProducer()
	if err := second.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p := range int32(parts) {
		if err := second.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(fmt.Sprintf("second-%d", p))}).FirstErr(); err != nil {
			t.Fatalf("the next producer of %s, partition %d: %v", id, p, err)
		}
	}
	if err := second.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("the next producer of %s commits: %v", id, err)
	}

	// read_committed: every record of the second transaction, which
	// follows the first in every partition, and all or none of the first.
	reader := newClient(t, tc.c.Nodes[ctrl].Addr, kgo.SeedBrokers(tc.survivorSeeds(coord)...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	seen := map[string]int{}
	secondSeen := 0
	for secondSeen < parts {
		fs := reader.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read_committed read %d of the %d records of the second transaction; the first's outcome may still be open (records seen: %d)", secondSeen, parts, len(seen))
		}
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			seen[v]++
			if strings.HasPrefix(v, "second-") {
				secondSeen++
			}
		})
	}
	firstSeen := 0
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("%s read %d times", v, n)
		}
		if strings.HasPrefix(v, "first-") {
			firstSeen++
		}
	}
	t.Logf("read_committed sees %d of the %d records of the transaction open at the kill", firstSeen, parts*perPartition)
	switch {
	case firstSeen != 0 && firstSeen != parts*perPartition:
		t.Fatalf("read_committed sees %d of the %d records of one transaction: part of it", firstSeen, parts*perPartition)
	case commitErr == nil && firstSeen == 0:
		t.Fatal("the commit succeeded, yet read_committed sees none of the transaction")
	}
}

func TestClusterGroupKeepsItsCommittedOffsetsWhenItsCoordinatorIsKilledMidRebalance(t *testing.T) {
	tc := startCluster(t, 3, failoverSettings...)
	ctrl := tc.waitController(15 * time.Second)
	const topic, parts, n = "group-failover", 6, 600
	tc.createReplicated(ctrl, topic, parts, 3, 2)
	group, coord := tc.keyCoordinatedAwayFrom(ctrl, 0, "failover-group-")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seeds := tc.survivorSeeds(coord)

	prod := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range n {
		prod.Produce(ctx, &kgo.Record{Partition: int32(i % parts), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// Once the second member joins, every record a member is handed goes
	// here.
	var mu sync.Mutex
	var handed []*kgo.Record
	// Members commit again only once the offsets committed before the
	// kill are read back, so those must come back exactly.
	var mayCommit atomic.Bool
	member := func(name string) *kgo.Client {
		return newClient(t, seeds[0], kgo.SeedBrokers(tc.seeds()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.ClientID(name),
			// A long heartbeat interval keeps the rebalance the joining
			// member starts open for seconds, waiting for this member.
			kgo.HeartbeatInterval(4*time.Second), kgo.SessionTimeout(30*time.Second),
			kgo.RequestTimeoutOverhead(3*time.Second))
	}
	consume := func(cl *kgo.Client, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := cl.PollFetches(pctx)
			pcancel()
			recs := fs.Records()
			mu.Lock()
			handed = append(handed, recs...)
			mu.Unlock()
			if len(recs) > 0 && mayCommit.Load() {
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				_ = cl.CommitRecords(cctx, recs...) // a commit lost in the kill is redelivered: allowed
				ccancel()
			}
		}
	}

	// One member reads about half and commits what it read.
	a := member("member-a")
	got := 0
	for got < n/2 {
		fs := a.PollRecords(ctx, n/2-got)
		if ctx.Err() != nil {
			t.Fatalf("the first member read %d records", got)
		}
		recs := fs.Records()
		got += len(recs)
		if err := a.CommitRecords(ctx, recs...); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	adm := kadm.NewClient(newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.RequestRetries(20)))
	before, err := adm.FetchOffsets(ctx, group)
	if err != nil || before.Error() != nil {
		t.Fatalf("committed offsets before the kill: %v %v", err, before.Error())
	}

	// A second member joins: the group rebalances, and while it does its
	// coordinator's node is killed.
	b := member("member-b")
	stopB := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); consume(b, stopB) }()
	tc.waitGroupState(coord, group, 15*time.Second, "PreparingRebalance", "CompletingRebalance")
	t.Logf("killing node %d, coordinator of %s, mid-rebalance; %d records consumed and committed", coord+1, group, got)
	tc.c.Kill(coord)
	stopA := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); consume(a, stopA) }()

	// The offsets are read back from the coordinator that took over, by a
	// new client: franz-go keeps a group's coordinator cached across dial
	// errors for the sharded OffsetFetch, so the first one would keep
	// dialing the dead node.
	deadline := time.Now().Add(30 * time.Second)
	for {
		fresh := kadm.NewClient(newClient(t, seeds[0], kgo.SeedBrokers(seeds...)))
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		after, err := fresh.FetchOffsets(fctx, group)
		fcancel()
		fresh.Close()
		if err == nil && after.Error() == nil {
			if len(after.Offsets().Sorted()) != len(before.Offsets().Sorted()) {
				t.Fatalf("offsets committed for %d partitions before the coordinator's node was killed, for %d after", len(before.Offsets().Sorted()), len(after.Offsets().Sorted()))
			}
			for _, o := range before.Offsets().Sorted() {
				got, ok := after.Lookup(o.Topic, o.Partition)
				if !ok || got.At != o.At {
					t.Fatalf("%s-%d: committed offset %d before the coordinator's node was killed, %v after", o.Topic, o.Partition, o.At, got.Offset)
				}
			}
			mayCommit.Store(true)
			break
		}
		if time.Now().After(deadline) {
			for i := range tc.c.Nodes {
				if i != coord {
					t.Logf("node %d names coordinator %d", i+1, tc.coordinatorOf(i, 0, group))
				}
			}
			t.Fatalf("no committed offsets from a new coordinator within 30s: %v %v", err, after.Error())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The group resumes: the rest is consumed, nothing below the offsets
	// committed before the kill is handed out again.
	deadline = time.Now().Add(45 * time.Second)
	for {
		mu.Lock()
		distinct := map[string]bool{}
		for _, r := range handed {
			distinct[string(r.Value)] = true
		}
		mu.Unlock()
		if len(distinct) >= n-got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the kill the group consumed %d of the %d records not yet committed", len(distinct), n-got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stopA)
	close(stopB)
	wg.Wait()
	committed := map[int32]int64{}
	for _, o := range before.Offsets().Sorted() {
		committed[o.Partition] = o.At
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range handed {
		if r.Offset < committed[r.Partition] {
			t.Fatalf("%s-%d offset %d handed out again after the kill; the group had committed %d", r.Topic, r.Partition, r.Offset, committed[r.Partition])
		}
	}
}

// waitGroupState waits until node i, the group's coordinator, describes
// group in one of states.
func (tc *testCluster) waitGroupState(i int, group string, within time.Duration, states ...string) {
	tc.t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{group}
		if resp, err := tc.request(i, req, 2*time.Second); err == nil {
			if gs := resp.(*kmsg.DescribeGroupsResponse).Groups; len(gs) == 1 {
				last = gs[0].State
				for _, s := range states {
					if last == s {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("group %s is %q on node %d after %v; want one of %v", group, last, i+1, within, states)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
