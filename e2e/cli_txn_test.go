package e2e

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// weir producers describe, weir txn list|describe and weir txn abort show
// and end a hanging transaction, as Kafka's kafka-transactions.sh does.
func TestCLIShowsAndAbortsAHangingTransaction(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	brokers := "--brokers=" + p.addr
	createTopic(t, newAdmin(t, p.addr), "t", 1, nil)
	produceValues(t, p.addr, "t", 0, 3) // offsets 0-2
	hanging := txnProducer(t, p.addr, "tx-hanging")
	if err := hanging.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := hanging.ProduceSync(testCtx(t), &kgo.Record{Value: []byte("stuck")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	out, err := runWeir(t, "", "producers", "describe", "t", brokers)
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 6 && f[5] == "3" {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no producer with an open transaction at offset 3 in:\n%s", out)
	}
	out, err = runWeir(t, "", "txn", "list", "--state", "Ongoing", brokers)
	if err != nil || !strings.Contains(out, "tx-hanging") {
		t.Fatalf("txn list: %v\n%s", err, out)
	}
	out, err = runWeir(t, "", "txn", "describe", "tx-hanging", brokers)
	if err != nil || !strings.Contains(out, "Ongoing") {
		t.Fatalf("txn describe: %v\n%s", err, out)
	}
	if _, err := runWeir(t, "", "txn", "abort", "--topic", "t", "--partition", "0", "--start-offset", "7", brokers); err == nil {
		t.Fatal("abort of a transaction that does not exist succeeded")
	}
	if _, err := runWeir(t, "", "txn", "abort", "--topic", "t", "--partition", "0", "--start-offset", "3", brokers); err != nil {
		t.Fatal(err)
	}
	lso, err := newAdmin(t, p.addr).ListCommittedOffsets(testCtx(t), "t")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lso.Lookup("t", 0); o.Offset != 5 { // 3 records, the stuck one, the abort marker
		t.Fatalf("last stable offset %d after the abort, want 5", o.Offset)
	}
	rc := readAll(t, p.addr, "t", true)
	if count(rc, "stuck") != 0 || len(rc) != 3 {
		t.Fatalf("read_committed after the abort saw %v", rc)
	}
}
