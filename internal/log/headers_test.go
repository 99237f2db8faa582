package log_test

import (
	"testing"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// ReadHeaders visits exactly the batches Read returns from the same
// offset, across segments, and stops before maxOffset.
func TestReadHeadersVisitsTheBatchesReadReturns(t *testing.T) {
	fs := newMem()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 2000
	l := mustOpen(t, cfg)
	defer l.Close()
	var m model
	for i := range 40 {
		m.append(t, l, makeBatch(1+i%3, 100, int64(i)))
	}
	for _, tc := range []struct{ from, max int64 }{{0, m.next}, {5, m.next}, {7, 30}, {m.next - 1, m.next}, {m.next, m.next}} {
		var got []batch.Header
		err := l.ReadHeaders(tc.from, tc.max, func(h batch.Header) error {
			got = append(got, h)
			return nil
		})
		if err != nil {
			t.Fatalf("ReadHeaders(%d, %d): %v", tc.from, tc.max, err)
		}
		var want []batch.Header
		if tc.from < m.next {
			b, err := l.Read(tc.from, tc.max, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			for _, raw := range split(t, b) {
				h, _ := batch.ParseHeader(raw)
				want = append(want, h)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("ReadHeaders(%d, %d) visited %d batches, Read returns %d", tc.from, tc.max, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("ReadHeaders(%d, %d) batch %d: %+v, Read's %+v", tc.from, tc.max, i, got[i], want[i])
			}
		}
	}
	if err := l.ReadHeaders(m.next+1, m.next+2, func(batch.Header) error { return nil }); err == nil {
		t.Fatal("ReadHeaders past the log end did not fail")
	}
}

// Over large batches ReadHeaders reads their headers and nothing else.
func TestReadHeadersOfLargeBatchesReadsOnlyTheHeaders(t *testing.T) {
	counting := &logtest.ReadCountingFS{FS: newMem()}
	l := mustOpen(t, memConfig(counting))
	defer l.Close()
	var m model
	const n = 50
	for i := range n {
		m.append(t, l, makeBatch(1, 64<<10, int64(i)))
	}
	before := counting.LogBytes.Load()
	visited := 0
	if err := l.ReadHeaders(0, m.next, func(batch.Header) error { visited++; return nil }); err != nil {
		t.Fatal(err)
	}
	read := counting.LogBytes.Load() - before
	if visited != n {
		t.Fatalf("visited %d batches, want %d", visited, n)
	}
	// The first header is read twice: once to find the batch holding the
	// offset, once by the walk.
	if limit := int64(n+1) * batch.HeaderSize; read > limit {
		t.Errorf("ReadHeaders read %d bytes of a %d-byte log; want at most %d, the headers", read, l.Size(), limit)
	}
}
