package partition

import (
	"errors"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
)

// A guard taken before a marker of its producer refuses the append that
// follows the marker; guards of other producers, and guards taken after
// the marker, still pass; a retry of a batch appended before the marker
// is still answered with its offsets.
func TestMarkerInvalidatesVerificationsInProgress(t *testing.T) {
	p := open(t, t.TempDir())
	defer p.Close()
	build := func(pid int64, seq int32) ([]byte, batch.Header) {
		b := batch.Build(txnSpec(pid, seq), []batch.Record{{Value: []byte("v")}})
		h, err := batch.Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		return b, h
	}
	now := time.Now().UnixMilli()

	g := p.BeginVerification(7)
	b0, h0 := build(7, 0)
	if _, _, err := p.AppendVerified(b0, h0, now, g); err != nil {
		t.Fatalf("verified append: %v", err)
	}
	p.EndVerification(g)

	late := p.BeginVerification(7)
	other := p.BeginVerification(8)
	if _, err := p.AppendMarker(7, 0, true, 0); err != nil {
		t.Fatal(err)
	}
	end := p.LogEndOffset()
	b1, h1 := build(7, 1)
	if _, _, err := p.AppendVerified(b1, h1, now, late); !errors.Is(err, ErrTxnEnded) {
		t.Fatalf("append verified before the marker: %v, want %v", err, ErrTxnEnded)
	}
	if p.LogEndOffset() != end {
		t.Fatalf("log end moved from %d to %d", end, p.LogEndOffset())
	}
	retry := p.BeginVerification(7)
	if _, dup, err := p.AppendVerified(b0, h0, now, retry); err != nil || dup == nil || dup.BaseOffset != 0 {
		t.Fatalf("retry of the batch before the marker: %+v %v", dup, err)
	}
	if _, _, err := p.AppendVerified(b1, h1, now, retry); err != nil {
		t.Fatalf("append verified after the marker: %v", err)
	}
	b8, h8 := build(8, 0)
	if _, _, err := p.AppendVerified(b8, h8, now, other); err != nil {
		t.Fatalf("another producer's verified append: %v", err)
	}
	if _, _, err := p.AppendVerified(b8, h8, now, nil); !errors.Is(err, ErrTxnEnded) {
		t.Fatalf("append without a guard: %v", err)
	}
	for _, g := range []*TxnGuard{late, other, retry} {
		p.EndVerification(g)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.guards) != 0 {
		t.Fatalf("%d guards left", len(p.guards))
	}
}
