package batch

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestReassembleKeepsOffsetsAndCodecs(t *testing.T) {
	recs := []Record{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: nil}, {Key: []byte("c"), Value: bytes.Repeat([]byte("x"), 300)}}
	orig := Build(Spec{Timestamp: 1000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
	SetBaseOffset(orig, 500)
	for codec := int16(0); codec <= 4; codec++ {
		t.Run(fmt.Sprint("codec ", codec), func(t *testing.T) {
			h, _ := ParseHeader(orig)
			all, err := DecodeRecords(orig)
			if err != nil {
				t.Fatal(err)
			}
			h.Attributes |= codec
			// Keep the first and last record: offsets 500 and 502.
			b, err := Reassemble(h, []kmsg.Record{all[0], all[2]})
			if err != nil {
				t.Fatal(err)
			}
			nh, err := ParseHeader(b)
			if err != nil || CheckCRC(b, nh) != nil {
				t.Fatalf("reassembled batch: %v, crc %v", err, CheckCRC(b, nh))
			}
			if nh.BaseOffset != 500 || nh.LastOffsetDelta != 2 || nh.NumRecords != 2 || nh.Compression() != int8(codec) {
				t.Fatalf("header %+v", nh)
			}
			got, err := DecodeRecords(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[1].OffsetDelta != 2 || string(got[1].Key) != "c" || len(got[1].Value) != 300 {
				t.Fatalf("records %+v", got)
			}
		})
	}
}

func TestEmptyReassembledBatchHoldsItsOffsets(t *testing.T) {
	orig := Build(Spec{Timestamp: 1000, ProducerID: 9, ProducerEpoch: 1, BaseSequence: 40}, []Record{{Value: []byte("1")}, {Value: []byte("2")}})
	h, _ := ParseHeader(orig)
	h.Attributes |= 3 // lz4: dropped, there is nothing to compress
	b, err := Reassemble(h, nil)
	if err != nil {
		t.Fatal(err)
	}
	nh, _ := ParseHeader(b)
	if CheckCRC(b, nh) != nil || nh.NumRecords != 0 || nh.LastOffsetDelta != 1 || nh.Compression() != 0 || nh.ProducerID != 9 || nh.LastSequence() != 41 {
		t.Fatalf("empty batch %+v", nh)
	}
	SetLastOffsetDelta(b, 7)
	nh, _ = ParseHeader(b)
	if CheckCRC(b, nh) != nil || nh.NextOffset() != 8 {
		t.Fatalf("widened batch %+v, crc %v", nh, CheckCRC(b, nh))
	}
}
