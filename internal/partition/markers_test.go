package partition

import (
	"testing"
	"time"
)

// A partition applies each numbered transaction marker once, also after
// DeleteRecords past the producer's last marker drops its producer entry
// and a producer-expiration pass runs: the numbers are kept apart from
// the entries, so a late copy of transaction 1's marker never ends the
// producer's transaction 2.
func TestLateMarkerCopyAfterDeleteRecordsDoesNotEndTheNextTransaction(t *testing.T) {
	p := open(t, t.TempDir())
	defer p.Close()
	appendBatch(t, p, txnSpec(7, 0), "txn1")                 // 0
	end, applied, err := p.AppendTxnMarker(7, 0, true, 0, 1) // 1: transaction 1's COMMIT
	if err != nil || !applied {
		t.Fatalf("transaction 1's marker: applied %v, %v", applied, err)
	}
	if err := <-p.WaitDurable(end); err != nil {
		t.Fatal(err)
	}
	appendBatch(t, p, plain, "x") // 2
	if _, err := p.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	// The periodic pass, with the default expiration (7 days): nothing is
	// idle that long.
	p.ExpireProducers(time.Now().UnixMilli(), 7*24*3600*1000)

	txn2, _ := appendBatch(t, p, txnSpec(7, 1), "txn2") // 3: transaction 2 begins
	if lso := p.LastStableOffset(); lso != txn2 {
		t.Fatalf("LSO %d with transaction 2 open at %d", lso, txn2)
	}
	// The late copy of transaction 1's marker.
	end, applied, err = p.AppendTxnMarker(7, 0, true, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-p.WaitDurable(end); err != nil {
		t.Fatal(err)
	}
	if applied || p.LastStableOffset() != txn2 {
		t.Fatalf("a late copy of transaction 1's COMMIT (number 1) was applied after DeleteRecords and a producer-expiration pass: applied %v, LSO %d (transaction 2 began at %d and is still open at its coordinator); transaction 2's records are now committed",
			applied, p.LastStableOffset(), txn2)
	}
}
