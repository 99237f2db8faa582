package batch

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func sample() []byte {
	return Build(Spec{Timestamp: 1000, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 3},
		[]Record{{Key: []byte("k"), Value: []byte("v1")}, {Value: []byte("v2")}})
}

func TestBuildProducesABatchKmsgDecodes(t *testing.T) {
	b := sample()
	h, err := Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.NumRecords != 2 || h.LastOffsetDelta != 1 || h.ProducerID != 7 || h.BaseSequence != 3 || h.LastSequence() != 4 {
		t.Fatalf("header %+v", h)
	}
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	var r kmsg.Record
	if err := r.ReadFrom(kb.Records); err != nil || string(r.Key) != "k" || string(r.Value) != "v1" {
		t.Fatalf("first record %+v, %v", r, err)
	}
}

func TestValidateRejects(t *testing.T) {
	good := sample()
	flip := func(i int) []byte { b := append([]byte(nil), good...); b[i] ^= 0xff; return b }
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"short header", good[:40], ErrCorrupt},
		{"cut records", good[:len(good)-1], ErrCorrupt},
		{"trailing bytes", append(append([]byte(nil), good...), 0), ErrCorrupt},
		{"magic 1", func() []byte { b := append([]byte(nil), good...); b[offMagic] = 1; return b }(), ErrUnsupportedMagic},
		{"crc field", flip(offCRC), ErrCorrupt},
		{"record byte", flip(len(good) - 1), ErrCorrupt},
		{"attributes", flip(offAttributes + 1), ErrCorrupt},
	}
	for _, c := range cases {
		if _, err := Validate(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestOffsetAndEpochLieOutsideTheCRC(t *testing.T) {
	b := sample()
	SetBaseOffset(b, 1<<40)
	SetLeaderEpoch(b, 9)
	h, err := Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 1<<40 || h.LeaderEpoch != 9 || h.LastOffset() != 1<<40+1 {
		t.Fatalf("header %+v", h)
	}
}

func TestLastSequenceWraps(t *testing.T) {
	h := Header{BaseSequence: 1<<31 - 1, LastOffsetDelta: 2}
	if got := h.LastSequence(); got != 1 {
		t.Fatalf("last sequence %d, want 1", got)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(sample())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Validate(b)
		if err == nil && h.Size() != len(b) {
			t.Fatalf("accepted batch of size %d in %d bytes", h.Size(), len(b))
		}
	})
}

func TestRecordsDecodesWhatBuildEncodes(t *testing.T) {
	recs, err := Records(sample())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Key) != "k" || string(recs[1].Value) != "v2" || recs[1].OffsetDelta != 1 {
		t.Fatalf("records %+v", recs)
	}
}

func TestSetLogAppendTimeKeepsTheBatchValid(t *testing.T) {
	b := sample()
	SetLogAppendTime(b, 424242)
	h, err := Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.MaxTimestamp != 424242 || h.Attributes&AttrTimestampType == 0 {
		t.Fatalf("header %+v", h)
	}
}
