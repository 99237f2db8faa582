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

// The console's partition-level abort (the topic page's "Abort here…",
// WriteTxnMarkers at one partition, as kafka-transactions.sh abort,
// KIP-664) is meant for a hanging transaction its coordinator no longer
// knows. Used on a transaction its coordinator still holds open, it must
// not split that transaction: either the console refuses it (the
// transactions page aborts such a one everywhere at once, fencing its
// producer), or the transaction ends the same way on every partition.
// Here a producer writes one record to each of two partitions, the
// operator aborts at partition 0, and the producer then commits. The
// correct outcome: a read_committed consumer sees both records (the
// partition abort was refused) or neither (the commit failed), never
// only partition 1's.
func TestConsolePartitionAbortNeverSplitsATransactionItsCoordinatorHolds(t *testing.T) {
	addr, admin := startConsoleBroker(t)
	ctx := testCtx(t)
	adm := newAdmin(t, addr)
	const topic = "split-txn"
	createTopic(t, adm, topic, 2, nil)
	prod := newClient(t, addr, kgo.TransactionalID("split-txn-id"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p, v := range []string{"p0", "p1"} {
		if err := prod.ProduceSync(ctx, &kgo.Record{Partition: int32(p), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
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
		t.Fatalf("no open transaction at %s-0: %+v", topic, described)
	}
	form := url.Values{"topic": {topic}, "partition": {"0"}, "start_offset": {strconv.FormatInt(start, 10)}, "confirm": {"yes"}}
	code, _ := consolePost(t, admin, "/topic/abort", form, nil)
	t.Logf("partition abort at %s-0 answered %d (refused: %v)", topic, code, code != http.StatusSeeOther)

	commitErr := prod.EndTransaction(ctx, kgo.TryCommit)
	t.Logf("the producer's commit after the partition abort: %v", commitErr)
	var seen []string
	for _, r := range consumeQuiet(t, addr, topic, 3*time.Second, kgo.FetchIsolationLevel(kgo.ReadCommitted())) {
		seen = append(seen, string(r.Value))
	}
	sort.Strings(seen)
	if len(seen) == 1 {
		t.Errorf("read_committed sees %v of the transaction's two records (commit: %v): the partition abort at %s-0 split a transaction its coordinator then committed at %s-1", seen, commitErr, topic, topic)
	}
	if commitErr == nil && len(seen) != 2 {
		t.Errorf("the producer's commit succeeded but read_committed sees %v, want [p0 p1]", seen)
	}
}
