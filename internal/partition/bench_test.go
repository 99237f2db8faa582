package partition

// Benchmarks of the read_committed and transactional hot paths. No
// timings are asserted.

import (
	"fmt"
	"testing"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
)

func benchPartition(b *testing.B) *Partition {
	b.Helper()
	// The real file system (page cache): MemFS's growing slices would
	// dominate the append timings.
	p, err := OpenWith("t", 0, b.TempDir(), wlog.DefaultConfig(), 0, []int32{0}, Options{ManualFlush: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

func benchAppend(b *testing.B, p *Partition, spec batch.Spec, recs []batch.Record) int64 {
	raw := batch.Build(spec, recs)
	h, err := batch.Validate(raw)
	if err != nil {
		b.Fatal(err)
	}
	base, _, err := p.Append(raw, h, 0)
	if err != nil {
		b.Fatal(err)
	}
	return base
}

func benchRecords(n, size int) []batch.Record {
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: make([]byte, size)}
	}
	return recs
}

// BenchmarkRead reads 64 KiB from the middle of a flushed log with
// ReadInto (read_uncommitted) and ReadCommittedInto (read_committed),
// with 0, 100, 10,000 and 100,000 aborted transactions in the partition (all
// below the read, so none is returned: the cost is the scan).
func BenchmarkRead(b *testing.B) {
	for _, abortedTxns := range []int{0, 100, 10000, 100000} {
		p := benchPartition(b)
		var seq int32
		for i := range abortedTxns {
			benchAppend(b, p, txnSpec(7, seq), benchRecords(1, 10))
			seq++
			if _, err := p.AppendMarker(7, 0, false, 0); err != nil {
				b.Fatal(err)
			}
			if i%1000 == 0 {
				if err := p.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		}
		from := p.LogEndOffset()
		for range 2000 {
			benchAppend(b, p, plain, benchRecords(10, 100))
		}
		if err := p.Sync(); err != nil {
			b.Fatal(err)
		}
		lso, hw := p.LastStableOffset(), p.HighWatermark()
		if lso != hw {
			b.Fatalf("lso %d hw %d", lso, hw)
		}
		buf := make([]byte, 0, 1<<20)
		from += 5000
		b.Run(fmt.Sprintf("aborted=%d/ReadInto", abortedTxns), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				data, err := p.ReadInto(buf, from, hw, 64<<10)
				if err != nil || len(data) == 0 {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("aborted=%d/ReadCommittedInto", abortedTxns), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				data, _, err := p.ReadCommittedInto(buf, from, lso, 64<<10)
				if err != nil || len(data) == 0 {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppend appends 10-record batches of 100-byte values:
// plain, idempotent, and transactional (one open transaction), without
// flushing. The batches are built before the timer starts.
func BenchmarkAppend(b *testing.B) {
	recs := benchRecords(10, 100)
	for _, kind := range []string{"plain", "idempotent", "transactional"} {
		b.Run(kind, func(b *testing.B) {
			p := benchPartition(b)
			raws := make([][]byte, b.N)
			hs := make([]batch.Header, b.N)
			for i := range raws {
				spec := plain
				switch kind {
				case "idempotent":
					spec = batch.Spec{ProducerID: 3, ProducerEpoch: 0, BaseSequence: int32(i * 10)}
				case "transactional":
					spec = txnSpec(7, int32(i*10))
				}
				raws[i] = batch.Build(spec, recs)
				h, err := batch.Validate(raws[i])
				if err != nil {
					b.Fatal(err)
				}
				hs[i] = h
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := p.Append(raws[i], hs[i], 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendBesideReaders is transactional Append while two
// goroutines read in a loop, with ReadInto or ReadCommittedInto, in a
// partition holding 10,000 aborted transactions: ReadCommittedInto takes
// the append lock for its aborted list.
func BenchmarkAppendBesideReaders(b *testing.B) {
	recs := benchRecords(10, 100)
	for _, committed := range []bool{false, true} {
		name := map[bool]string{false: "ReadInto", true: "ReadCommittedInto"}[committed]
		b.Run(name, func(b *testing.B) {
			p := benchPartition(b)
			var seq int32
			for range 10000 {
				benchAppend(b, p, txnSpec(7, seq), benchRecords(1, 10))
				seq++
				if _, err := p.AppendMarker(7, 0, false, 0); err != nil {
					b.Fatal(err)
				}
			}
			from := p.LogEndOffset()
			for range 200 {
				benchAppend(b, p, plain, recs)
			}
			if err := p.Sync(); err != nil {
				b.Fatal(err)
			}
			hw := p.HighWatermark()
			raws := make([][]byte, b.N)
			hs := make([]batch.Header, b.N)
			for i := range raws {
				raws[i] = batch.Build(txnSpec(8, int32(i*10)), recs)
				hs[i], _ = batch.Validate(raws[i])
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			for range 2 {
				go func() {
					defer func() { done <- struct{}{} }()
					buf := make([]byte, 0, 1<<20)
					for {
						select {
						case <-stop:
							return
						default:
						}
						if committed {
							p.ReadCommittedInto(buf, from, hw, 64<<10)
						} else {
							p.ReadInto(buf, from, hw, 64<<10)
						}
					}
				}()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := p.Append(raws[i], hs[i], 0); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			close(stop)
			<-done
			<-done
		})
	}
}
