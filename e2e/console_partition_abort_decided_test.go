package e2e

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A commit already decided is never turned into an abort, not even at one
// partition by the console's partition-level abort (WriteTxnMarkers, as
// kafka-transactions.sh abort, KIP-664). Once EndTxn(commit) has
// answered, PrepareCommit is durable and the producer has been told its
// transaction committed; until the COMMIT markers land, each partition
// still shows the transaction open, and the topic page offers "Abort
// here…" for it. Here the markers are held back (txn.before-markers
// delayed) while the operator aborts at partition 0. The correct outcome:
// the console refuses that abort (the coordinator has decided the
// transaction: it is not hanging), and once the markers land a
// read_committed consumer sees both records the producer committed.
func TestConsolePartitionAbortNeverUndoesADecidedCommit(t *testing.T) {
	base := freePortRange(t, 1)
	admin := "127.0.0.1:" + strconv.Itoa(base+100)
	p := startProc(t, "127.0.0.1:"+strconv.Itoa(base), t.TempDir(), "--admin-listen", admin,
		"--unsafe-faults", "txn.before-markers=delay:12s#1")
	addr := p.addr
	ctx := testCtx(t)
	adm := newAdmin(t, addr)
	const topic = "decided"
	createTopic(t, adm, topic, 2, nil)
	prod := newClient(t, addr, kgo.TransactionalID("decided-txn"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p, v := range []string{"p0", "p1"} {
		if err := prod.ProduceSync(ctx, &kgo.Record{Partition: int32(p), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	// The commit is decided; its markers are held back.
	described, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	start := int64(-1)
	described.EachProducer(func(p kadm.DescribedProducer) {
		if p.Partition == 0 && p.CurrentTxnStartOffset >= 0 {
			start = p.CurrentTxnStartOffset
		}
	})
	if start < 0 {
		t.Fatalf("the commit's markers already reached %s-0 (the fault did not hold them): %+v", topic, described)
	}
	form := url.Values{"topic": {topic}, "partition": {"0"}, "start_offset": {strconv.FormatInt(start, 10)}, "confirm": {"yes"}}
	if code, body := consolePost(t, admin, "/topic/abort", form, nil); code == http.StatusSeeOther || code == http.StatusOK {
		t.Errorf("partition abort at %s-0 of a transaction whose commit was decided answered %d, want it refused:\n%s", topic, code, body)
	}

	// Wait for the coordinator to finish the commit (its markers land once
	// the fault's delay is over), then read the partition as a
	// read_committed consumer does.
	deadline := time.Now().Add(40 * time.Second)
	for {
		d, err := adm.DescribeTransactions(ctx, "decided-txn")
		if err == nil && d["decided-txn"].State == "CompleteCommit" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decided-txn did not reach CompleteCommit: %+v %v", d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var seen []string
	for _, r := range consumeQuiet(t, addr, topic, 3*time.Second, kgo.FetchIsolationLevel(kgo.ReadCommitted())) {
		seen = append(seen, string(r.Value))
	}
	sort.Strings(seen)
	if len(seen) != 2 {
		t.Errorf("read_committed sees %v of the committed transaction, want [p0 p1]: the decided commit was turned into an abort at %s-0", seen, topic)
	}
}
