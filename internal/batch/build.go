package batch

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record to put in a batch built by Build.
type Record struct {
	Key, Value []byte
	Headers    []kmsg.Header
}

// Spec describes a batch to build.
type Spec struct {
	Attributes    int16
	Timestamp     int64 // every record gets this timestamp
	ProducerID    int64 // -1 when not idempotent
	ProducerEpoch int16 // -1 when not idempotent
	BaseSequence  int32 // -1 when not idempotent
}

// Build encodes an uncompressed v2 batch holding recs, with base offset 0
// and a valid CRC. The log assigns the real base offset on append.
func Build(s Spec, recs []Record) []byte {
	var records []byte
	for i, r := range recs {
		rec := kmsg.Record{OffsetDelta: int32(i), Key: r.Key, Value: r.Value, Headers: r.Headers}
		// The length prefix is a varint of the body's size: encode once with
		// a zero length (one byte) to learn the size, then for real.
		rec.Length = int32(len(rec.AppendTo(nil)) - 1)
		records = rec.AppendTo(records)
	}
	b := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           s.Attributes,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       s.Timestamp,
		MaxTimestamp:         s.Timestamp,
		ProducerID:           s.ProducerID,
		ProducerEpoch:        s.ProducerEpoch,
		FirstSequence:        s.BaseSequence,
		NumRecords:           int32(len(recs)),
		Records:              records,
	}
	b.Length = int32(HeaderSize - lengthPrefix + len(records))
	out := b.AppendTo(make([]byte, 0, HeaderSize+len(records)))
	binary.BigEndian.PutUint32(out[offCRC:], crcOf(out))
	return out
}

// Records decodes the records of one uncompressed batch, as internal topics
// (the metadata log, later the coordinators' topics) are written.
func Records(b []byte) ([]kmsg.Record, error) {
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if kb.Attributes&AttrCompressionMask != 0 {
		return nil, fmt.Errorf("internal batch is compressed")
	}
	recs := make([]kmsg.Record, 0, kb.NumRecords)
	rest := kb.Records
	for i := int32(0); i < kb.NumRecords; i++ {
		length, n := binary.Varint(rest)
		if n <= 0 || length < 0 || int64(len(rest)-n) < length {
			return nil, fmt.Errorf("%w: record %d truncated", ErrCorrupt, i)
		}
		var r kmsg.Record
		if err := r.ReadFrom(rest[:n+int(length)]); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
		}
		recs = append(recs, r)
		rest = rest[n+int(length):]
	}
	return recs, nil
}
