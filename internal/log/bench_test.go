package log_test

import (
	"testing"

	wlog "github.com/weir-broker/weir/internal/log"
)

// benchLog opens a log on the real file system, keeping at most a few
// segments so long runs do not fill the disk.
func benchLog(b *testing.B) *wlog.Log {
	cfg := wlog.DefaultConfig()
	cfg.SegmentBytes = 64 << 20
	cfg.RetentionBytes = 256 << 20
	l, err := wlog.Open(b.TempDir(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// benchBatch is about 16 KiB: 150 records of 100-byte values.
func benchBatch() []byte { return makeBatch(150, 100, 1_700_000_000_000) }

func BenchmarkAppend(b *testing.B) {
	l := benchLog(b)
	batch := benchBatch()
	b.SetBytes(int64(len(batch)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 {
			if _, err := l.EnforceRetention(noLimit); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkAppendSync(b *testing.B) {
	l := benchLog(b)
	batch := benchBatch()
	b.SetBytes(int64(len(batch)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
		if _, err := l.Sync(); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 {
			if _, err := l.EnforceRetention(noLimit); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRead reads 1 MiB fetches from a log of 64 MiB.
func BenchmarkRead(b *testing.B) {
	l := benchLog(b)
	batch := benchBatch()
	for range (64 << 20) / len(batch) {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	end := l.EndOffset()
	b.SetBytes(1 << 20)
	b.ResetTimer()
	off := int64(0)
	for b.Loop() {
		out, err := l.Read(off, end, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		off += int64(len(out)/len(batch)) * 150
		if off >= end-10_000 {
			off = 0
		}
	}
}
