package partition

import (
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

func open(t *testing.T, dir string) *Partition {
	t.Helper()
	p, err := Open("t", 0, dir, wlog.DefaultConfig(), 0, []int32{0})
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

// The first offset of a transaction is published before its first batch
// can become visible: a flush that lands between the batch's write to the
// log and the producer state's update (the flusher moves the high
// watermark without the append lock) must not let the last stable offset
// pass the open transaction.
func TestLastStableOffsetNeverPassesAnOpenTransaction(t *testing.T) {
	var p *Partition
	var inTxnAppend bool
	var txnBase int64
	var lsoSeen []int64
	opts := Options{ManualFlush: true, Yield: func(at Point) {
		if at == AfterLogAppend && inTxnAppend {
			if err := p.Sync(); err != nil {
				t.Error(err)
			}
			lsoSeen = append(lsoSeen, p.LastStableOffset())
		}
	}}
	p, err := OpenWith("t", 0, t.TempDir(), wlog.DefaultConfig(), 0, []int32{0}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b := batch.Build(plain, []batch.Record{{Value: []byte("a")}})
	h, _ := batch.Validate(b)
	if _, _, err := p.Append(b, h, 0); err != nil {
		t.Fatal(err)
	}
	txnBase = p.LogEndOffset()
	b = batch.Build(txnSpec(7, 0), []batch.Record{{Value: []byte("txn")}})
	h, _ = batch.Validate(b)
	inTxnAppend = true
	if _, _, err := p.Append(b, h, 0); err != nil {
		t.Fatal(err)
	}
	inTxnAppend = false
	if len(lsoSeen) != 1 || lsoSeen[0] > txnBase {
		t.Fatalf("last stable offset seen mid-append %v, want at most %d (the open transaction's first offset)", lsoSeen, txnBase)
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	if lso := p.LastStableOffset(); lso != txnBase {
		t.Fatalf("last stable offset %d after the append, want %d", lso, txnBase)
	}
}

// memPartition opens partition t-0 in /t on fs.
func memPartition(t *testing.T, fs *logtest.MemFS) *Partition {
	t.Helper()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	p, err := Open("t", 0, "/t", cfg, 0, []int32{0})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func appendMarker(t *testing.T, p *Partition, pid int64, commit bool) {
	t.Helper()
	end, err := p.AppendMarker(pid, 0, commit, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-p.WaitDurable(end); err != nil {
		t.Fatal(err)
	}
}

// A transaction committed after the newest producer snapshot stays
// committed when DeleteRecords moves the log start past its marker and
// the broker is killed: recovery must not start from a snapshot that
// predates the log start, whose open transaction no replay would close.
func TestCommitBelowTheLogStartSurvivesACrash(t *testing.T) {
	fs := logtest.NewMemFS()
	p := memPartition(t, fs)
	appendBatch(t, p, txnSpec(7, 0), "txn") // 0
	if err := p.Close(); err != nil {       // snapshot at 1: 7's transaction is open
		t.Fatal(err)
	}
	p = memPartition(t, fs)
	appendMarker(t, p, 7, true)   // 1
	appendBatch(t, p, plain, "a") // 2
	appendBatch(t, p, plain, "b") // 3
	if _, err := p.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	killed := fs.Clone()
	p.Close()

	p = memPartition(t, killed)
	defer p.Close()
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw {
		t.Fatalf("last stable offset %d after the restart, want the high watermark %d: no transaction is open", lso, hw)
	}
	for _, e := range p.Producers() {
		if e.InTxn {
			t.Fatalf("producer %d has an open transaction after the restart", e.ProducerID)
		}
	}
}

// An idempotent producer whose batches between the newest snapshot and
// the log start were purged by DeleteRecords can go on at its next
// sequence after a crash: recovery must not rebuild it from a snapshot
// that misses those batches.
func TestIdempotentProducerGoesOnAfterAPurgeAndACrash(t *testing.T) {
	fs := logtest.NewMemFS()
	p := memPartition(t, fs)
	idem := func(seq int32) batch.Spec {
		return batch.Spec{ProducerID: 3, ProducerEpoch: 0, BaseSequence: seq}
	}
	appendBatch(t, p, idem(0), "s0")  // 0
	if err := p.Close(); err != nil { // snapshot at 1: last sequence 0
		t.Fatal(err)
	}
	p = memPartition(t, fs)
	appendBatch(t, p, idem(1), "s1") // 1
	appendBatch(t, p, idem(2), "s2") // 2
	appendBatch(t, p, plain, "x")    // 3
	if _, err := p.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	killed := fs.Clone()
	p.Close()

	p = memPartition(t, killed)
	defer p.Close()
	b := batch.Build(idem(3), []batch.Record{{Value: []byte("s3")}})
	h, _ := batch.Validate(b)
	if _, _, err := p.Append(b, h, 0); err != nil {
		t.Fatalf("the producer's next batch after a purge and a crash: %v", err)
	}
}

// Retention deletes only segments wholly below the high watermark: a
// segment rolled but not yet flushed stays, so the log start never
// passes the high watermark.
func TestRetentionStopsAtTheHighWatermark(t *testing.T) {
	cfg := wlog.DefaultConfig()
	cfg.SegmentBytes = 200
	p, err := OpenWith("t", 0, t.TempDir(), cfg, 0, []int32{0}, Options{ManualFlush: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 10 {
		b := batch.Build(plain, []batch.Record{{Value: make([]byte, 60)}})
		h, _ := batch.Validate(b)
		if _, _, err := p.Append(b, h, int64(i)); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			if err := p.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg.RetentionBytes = 0
	p.SetConfig(cfg)
	if _, err := p.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if start, hw := p.LogStartOffset(), p.HighWatermark(); start > hw {
		t.Fatalf("retention moved the log start to %d, past the high watermark %d", start, hw)
	}
}

// A wait for durability asked after Close fails at once instead of
// waiting for a flush that will never come.
func TestWaitDurableAfterCloseFails(t *testing.T) {
	p, err := OpenWith("t", 0, t.TempDir(), wlog.DefaultConfig(), 0, []int32{0}, Options{ManualFlush: true})
	if err != nil {
		t.Fatal(err)
	}
	b := batch.Build(plain, []batch.Record{{Value: []byte("a")}})
	h, _ := batch.Validate(b)
	base, _, err := p.Append(b, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.WaitDurable(base + 2):
		if err != ErrClosed {
			t.Fatalf("wait after close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a wait asked after Close never returned")
	}
}
