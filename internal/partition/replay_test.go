package partition

import (
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// After a crash, a partition rebuilds its producer state from the batch
// headers alone: reopening reads the headers and the part of the active
// segment written since the log last recorded its fsynced position, not
// the whole log, and still knows each producer's last sequence.
func TestReopenAfterACrashReplaysProducersFromBatchHeaders(t *testing.T) {
	fs := logtest.NewMemFS()
	p := memPartition(t, fs)
	idem := func(seq int32) []byte {
		return batch.Build(batch.Spec{ProducerID: 7, ProducerEpoch: 0, BaseSequence: seq, Timestamp: time.Now().UnixMilli()},
			[]batch.Record{{Value: make([]byte, 64<<10)}})
	}
	const n = 100
	for seq := range int32(n) {
		b := idem(seq)
		h, _ := batch.Validate(b)
		base, _, err := p.Append(b, h, time.Now().UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		if err := <-p.WaitDurable(base + 1); err != nil {
			t.Fatal(err)
		}
	}
	killed := &logtest.ReadCountingFS{FS: fs.Clone()}
	p.Close()

	cfg := wlog.DefaultConfig()
	cfg.FS = killed
	q, err := Open("t", 0, "/t", cfg, 0, []int32{0})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	read := killed.LogBytes.Load()
	// Recovery may check up to one tail checkpoint interval (1 MiB) plus
	// a batch with CRCs; everything else is headers, a few times each.
	if limit := int64(1<<20+(64<<10)) + 4*n*batch.HeaderSize; read > limit {
		t.Errorf("reopening read %d bytes of a %d-byte log; want at most %d", read, q.log.Size(), limit)
	}
	b := idem(n - 1)
	h, _ := batch.Validate(b)
	if _, dup, err := q.Append(b, h, time.Now().UnixMilli()); err != nil || dup == nil {
		t.Fatalf("the producer's last batch again after the crash: dup %+v, err %v; want a duplicate", dup, err)
	}
	b = idem(n)
	h, _ = batch.Validate(b)
	if _, dup, err := q.Append(b, h, time.Now().UnixMilli()); err != nil || dup != nil {
		t.Fatalf("the producer's next batch after the crash: dup %+v, err %v", dup, err)
	}
}
