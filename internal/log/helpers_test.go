package log_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

const dir = "/data/topic-0"

// makeBatch builds a batch of n records of valueSize bytes stamped ts.
func makeBatch(n, valueSize int, ts int64) []byte {
	recs := make([]batch.Record, n)
	for i := range recs {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)
		recs[i] = batch.Record{Key: []byte(fmt.Sprint(i)), Value: v}
	}
	return batch.Build(batch.Spec{Timestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
}

// clock is an adjustable time source.
type clock struct{ t time.Time }

func newClock() *clock                   { return &clock{t: time.UnixMilli(1_700_000_000_000)} }
func (c *clock) Now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func (c *clock) ms() int64               { return c.t.UnixMilli() }

func memConfig(fs wlog.FS) wlog.Config {
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	return cfg
}

func mustOpen(t testing.TB, cfg wlog.Config) *wlog.Log {
	t.Helper()
	l, err := wlog.Open(dir, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

// model records what was appended so tests can compare the log to it.
type model struct {
	batches [][]byte // as stored, base offsets assigned
	next    int64
}

func (m *model) append(t testing.TB, l *wlog.Log, b []byte) int64 {
	t.Helper()
	base, err := l.Append(b)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if base != m.next {
		t.Fatalf("append got base %d, want %d", base, m.next)
	}
	h, _ := batch.ParseHeader(b)
	m.batches = append(m.batches, append([]byte(nil), b...))
	m.next = h.NextOffset()
	return base
}

// prefix returns the model's batches that end at or before offset.
func (m *model) prefix(offset int64) [][]byte {
	var out [][]byte
	for _, b := range m.batches {
		h, _ := batch.ParseHeader(b)
		if h.NextOffset() > offset {
			break
		}
		out = append(out, b)
	}
	return out
}

// readAll reads every batch from the log start in small reads.
func readAll(t testing.TB, l *wlog.Log) [][]byte {
	t.Helper()
	var out [][]byte
	for off := l.StartOffset(); off < l.EndOffset(); {
		b, err := l.Read(off, l.EndOffset(), 1)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		bs := split(t, b)
		if len(bs) != 1 {
			t.Fatalf("read at %d with maxBytes 1 returned %d batches", off, len(bs))
		}
		out = append(out, bs...)
		h, _ := batch.ParseHeader(bs[0])
		off = h.NextOffset()
	}
	return out
}

// split cuts read output into batches, checking each.
func split(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		h, err := batch.Validate(b[:min(len(b), sizeOf(b))])
		if err != nil {
			t.Fatalf("read returned an invalid batch: %v", err)
		}
		out = append(out, b[:h.Size()])
		b = b[h.Size():]
	}
	return out
}

func sizeOf(b []byte) int {
	h, err := batch.PeekHeader(b)
	if err != nil {
		return len(b)
	}
	return h.Size()
}

func equalBatches(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("log holds %d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
}

func randomBatch(r *rand.Rand, ts int64) []byte {
	return makeBatch(1+r.IntN(5), r.IntN(300), ts)
}

func newMem() *logtest.MemFS { return logtest.NewMemFS() }

// noLimit lets retention delete up to the log end.
const noLimit = math.MaxInt64
