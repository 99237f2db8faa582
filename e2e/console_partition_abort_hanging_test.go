package e2e

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// What the console's partition-level abort is for: a hanging transaction,
// open at a partition while no coordinator holds it. Here the coordinator
// loses its state (the broker restarts without __transaction_state) while
// a transaction is open at a partition; the partition's producer state,
// replayed from its log, still holds the last stable offset back, and
// nothing will ever end it but an ABORT marker written at the partition.
// The console writes it, and the last stable offset moves to the end.
func TestConsolePartitionAbortEndsATransactionNoCoordinatorHolds(t *testing.T) {
	base := freePortRange(t, 1)
	listen, admin := "127.0.0.1:"+strconv.Itoa(base), "127.0.0.1:"+strconv.Itoa(base+100)
	dir := t.TempDir()
	p := startProc(t, listen, dir, "--admin-listen", admin)
	ctx := testCtx(t)
	const topic = "orphaned"
	createTopic(t, newAdmin(t, p.addr), topic, 1, nil)
	prod := newClient(t, p.addr, kgo.TransactionalID("orphaned-txn"), kgo.DefaultProduceTopic(topic))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("orphaned")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	prod.Close()
	p.kill()
	lost, _ := filepath.Glob(filepath.Join(dir, "__transaction_state-*"))
	if len(lost) == 0 {
		t.Fatalf("no __transaction_state partition in %s", dir)
	}
	for _, d := range lost {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	p = startProc(t, listen, dir, "--admin-listen", admin)
	adm := newAdmin(t, p.addr)
	if d, err := adm.DescribeTransactions(ctx, "orphaned-txn"); err == nil && !errors.Is(d["orphaned-txn"].Err, kerr.TransactionalIDNotFound) {
		t.Fatalf("after losing its state the coordinator still describes orphaned-txn: %+v", d["orphaned-txn"])
	}
	described, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	start := int64(-1)
	described.EachProducer(func(p kadm.DescribedProducer) {
		if p.CurrentTxnStartOffset >= 0 {
			start = p.CurrentTxnStartOffset
		}
	})
	if start < 0 {
		t.Fatalf("no open transaction at %s-0 after the restart: %+v", topic, described)
	}
	form := url.Values{"topic": {topic}, "partition": {"0"}, "start_offset": {strconv.FormatInt(start, 10)}}
	if code, body := consolePost(t, admin, "/topic/abort", form, nil); code != http.StatusOK || !strings.Contains(body, `id="confirm"`) {
		t.Fatalf("partition abort of the hanging transaction asked no confirmation (%d):\n%s", code, body)
	}
	form.Set("confirm", "yes")
	if code, body := consolePost(t, admin, "/topic/abort", form, nil); code != http.StatusSeeOther {
		t.Fatalf("confirmed partition abort of the hanging transaction answered %d, want 303:\n%s", code, body)
	}
	stable, err1 := adm.ListCommittedOffsets(ctx, topic)
	ends, err2 := adm.ListEndOffsets(ctx, topic)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if s, e := stable[topic][0].Offset, ends[topic][0].Offset; s != e || e != 2 {
		t.Errorf("after the ABORT marker the last stable offset is %d and the high watermark %d, want both 2 (the record and the marker)", s, e)
	}
	if recs := consumeQuiet(t, p.addr, topic, 2*time.Second, kgo.FetchIsolationLevel(kgo.ReadCommitted())); len(recs) != 0 {
		t.Errorf("read_committed sees %d records of the aborted transaction, want none", len(recs))
	}
}
