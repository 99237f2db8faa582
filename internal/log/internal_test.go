package log

import (
	"testing"

	"github.com/weir-broker/weir/internal/batch"
)

func TestCheckpointRoundTripAndRejectsDamage(t *testing.T) {
	c := checkpoint{startOffset: 12, recoveryPoint: 345, clean: true}
	b := c.encode()
	got, err := decodeCheckpoint(b)
	if err != nil || got != c {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	for i := range b {
		d := append([]byte(nil), b...)
		d[i] ^= 0x10
		if _, err := decodeCheckpoint(d); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := decodeCheckpoint(b[:len(b)-1]); err == nil {
		t.Fatal("short checkpoint accepted")
	}
}

func TestOffsetIndexDecodeRejectsImpossibleEntries(t *testing.T) {
	enc := func(x offsetIndex) []byte { return x.encode() }
	cases := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"empty", nil, true},
		{"good", enc(offsetIndex{{1, 100}, {5, 300}}), true},
		{"partial entry", enc(offsetIndex{{1, 100}})[:7], false},
		{"position past the file", enc(offsetIndex{{1, 1000}}), false},
		{"position zero", enc(offsetIndex{{1, 0}}), false},
		{"offsets not increasing", enc(offsetIndex{{5, 100}, {5, 300}}), false},
		{"positions not increasing", enc(offsetIndex{{1, 300}, {5, 100}}), false},
	}
	for _, c := range cases {
		if _, ok := decodeOffsetIndex(c.b, 1000); ok != c.ok {
			t.Errorf("%s: ok=%v", c.name, ok)
		}
	}
}

func TestIndexLookups(t *testing.T) {
	x := offsetIndex{{10, 100}, {20, 200}, {30, 300}}
	for rel, want := range map[uint32]int64{0: 0, 9: 0, 10: 100, 15: 100, 20: 200, 99: 300} {
		if got := x.lookup(rel); got != want {
			t.Errorf("offset lookup %d: %d, want %d", rel, got, want)
		}
	}
	ti := timeIndex{{ts: 100, rel: 3}, {ts: 200, rel: 8}}
	for ts, want := range map[int64]uint32{50: 0, 100: 0, 101: 3, 200: 3, 201: 8} {
		if got := ti.lookup(ts); got != want {
			t.Errorf("time lookup %d: %d, want %d", ts, got, want)
		}
	}
}

// Sync advances the persisted recovery point to the active segment once
// the segments before it are durable, so a restart after a crash scans only
// the active segment.
func TestSyncPersistsTheRecoveryPointAtTheActiveSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.SegmentBytes = 500
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b := batch.Build(batch.Spec{Timestamp: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]batch.Record{{Value: make([]byte, 200)}})
	for range 5 {
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	c, ok, err := readCheckpoint(OSFS{}, dir)
	if err != nil || !ok {
		t.Fatalf("checkpoint: %v %v", ok, err)
	}
	active := l.segs[len(l.segs)-1].base
	if active == 0 || c.recoveryPoint != active || c.clean {
		t.Fatalf("checkpoint %+v, active segment %d", c, active)
	}
}
