package partition

import (
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
)

func open(t *testing.T, dir string) *Partition {
	t.Helper()
	p, err := Open("t", 0, dir, wlog.DefaultConfig(), 0, []int32{1})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func appendBatch(t *testing.T, p *Partition, spec batch.Spec, value string) (int64, int64) {
	t.Helper()
	b := batch.Build(spec, []batch.Record{{Value: []byte(value)}})
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	base, dup, err := p.Append(b, h, time.Now().UnixMilli())
	if err != nil || dup != nil {
		t.Fatalf("append %s: %v %+v", value, err, dup)
	}
	if err := <-p.WaitDurable(base + 1); err != nil {
		t.Fatal(err)
	}
	return base, base + 1
}

var plain = batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}

func txnSpec(pid int64, seq int32) batch.Spec {
	return batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq}
}

// The last stable offset stops at the first offset of the earliest open
// transaction, moves when its marker is written, and an aborted
// transaction is reported to fetches that overlap it — also after a
// restart, from the producer snapshot.
func TestLastStableOffsetFollowsOpenTransactions(t *testing.T) {
	dir := t.TempDir()
	p := open(t, dir)
	appendBatch(t, p, plain, "a")            // 0
	appendBatch(t, p, txnSpec(7, 0), "txn7") // 1
	appendBatch(t, p, txnSpec(8, 0), "txn8") // 2
	_, hw := appendBatch(t, p, plain, "b")   // 3
	if lso := p.LastStableOffset(); lso != 1 || p.HighWatermark() != hw {
		t.Fatalf("lso %d hw %d, want 1 and %d", lso, p.HighWatermark(), hw)
	}
	end, err := p.AppendMarker(7, 0, false, 0) // abort 7 at offset 4
	if err != nil {
		t.Fatal(err)
	}
	if err := <-p.WaitDurable(end); err != nil {
		t.Fatal(err)
	}
	if lso := p.LastStableOffset(); lso != 2 {
		t.Fatalf("lso %d after aborting the first transaction, want 2", lso)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = open(t, dir)
	defer p.Close()
	if lso := p.LastStableOffset(); lso != 2 {
		t.Fatalf("lso %d after a restart, want 2", lso)
	}
	aborted := p.AbortedTransactions(0, 10)
	if len(aborted) != 1 || aborted[0].ProducerID != 7 || aborted[0].FirstOffset != 1 {
		t.Fatalf("aborted %+v", aborted)
	}
	if got := p.AbortedTransactions(5, 10); len(got) != 0 {
		t.Fatalf("aborted after the marker: %+v", got)
	}
	end, err = p.AppendMarker(8, 0, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	<-p.WaitDurable(end)
	if lso := p.LastStableOffset(); lso != p.HighWatermark() {
		t.Fatalf("lso %d with nothing open, want the high watermark %d", lso, p.HighWatermark())
	}
	// A marker older than the producer's epoch is a zombie coordinator's.
	if _, err := p.AppendMarker(8, -1, true, 0); err == nil {
		t.Fatal("marker of an older epoch accepted")
	}
}
