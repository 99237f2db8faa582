package batch

// Rewriting stored batches, as log compaction does: decode the records of
// a batch whatever its codec, and assemble a batch that keeps a stored
// batch's header (offsets, timestamps, producer fields, codec) around a
// subset of its records. Compression uses franz-go's codecs.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxPayloadBytes bounds what one batch may decompress to: no stored
// batch can make a reader allocate without limit.
const maxPayloadBytes = 256 << 20

var decompressor = kgo.DefaultDecompressor()

// DecodeRecords returns the records of one whole batch, decompressing
// them if needed.
func DecodeRecords(b []byte) ([]kmsg.Record, error) {
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	payload := kb.Records
	if codec := kb.Attributes & AttrCompressionMask; codec != 0 {
		var err error
		payload, err = decompressor.Decompress(payload, kgo.CompressionCodecType(codec))
		if err != nil {
			return nil, fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
		}
		if len(payload) > maxPayloadBytes {
			return nil, fmt.Errorf("%w: batch decompresses to %d bytes", ErrCorrupt, len(payload))
		}
	}
	return parseRecords(payload, kb.NumRecords)
}

func parseRecords(payload []byte, n int32) ([]kmsg.Record, error) {
	if n < 0 || int64(n) > int64(len(payload)) {
		return nil, fmt.Errorf("%w: %d records in %d bytes", ErrCorrupt, n, len(payload))
	}
	recs := make([]kmsg.Record, 0, n)
	for i := int32(0); i < n; i++ {
		length, sz := binary.Varint(payload)
		if sz <= 0 || length < 0 || int64(len(payload)-sz) < length {
			return nil, fmt.Errorf("%w: record %d truncated", ErrCorrupt, i)
		}
		var r kmsg.Record
		if err := r.ReadFrom(payload[:sz+int(length)]); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
		}
		recs = append(recs, r)
		payload = payload[sz+int(length):]
	}
	return recs, nil
}

// Reassemble builds a batch with h's header fields (base offset, last
// offset delta, timestamps, producer fields, codec) holding recs, whose
// offset and timestamp deltas are kept as they are. With no records the
// batch is empty and uncompressed: it only holds its offsets, as Kafka's
// compaction leaves a batch whose records all went.
func Reassemble(h Header, recs []kmsg.Record) ([]byte, error) {
	var payload []byte
	for i := range recs {
		payload = recs[i].AppendTo(payload)
	}
	attrs := h.Attributes
	if len(recs) == 0 {
		attrs &^= AttrCompressionMask
	}
	if codec := attrs & AttrCompressionMask; codec != 0 {
		c, err := compressorFor(int8(codec))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		out, used := c.Compress(&buf, payload)
		if used != kgo.CompressionCodecType(codec) {
			return nil, fmt.Errorf("batch: compressing with codec %d failed", codec)
		}
		payload = append([]byte(nil), out...)
	}
	kb := kmsg.RecordBatch{
		FirstOffset:          h.BaseOffset,
		PartitionLeaderEpoch: h.LeaderEpoch,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      h.LastOffsetDelta,
		FirstTimestamp:       h.BaseTimestamp,
		MaxTimestamp:         h.MaxTimestamp,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		FirstSequence:        h.BaseSequence,
		NumRecords:           int32(len(recs)),
		Records:              payload,
	}
	kb.Length = int32(HeaderSize - lengthPrefix + len(payload))
	out := kb.AppendTo(make([]byte, 0, HeaderSize+len(payload)))
	binary.BigEndian.PutUint32(out[offCRC:], crcOf(out))
	return out, nil
}

// SetLastOffsetDelta widens a batch to end at base+delta (compaction
// folds the offsets of a batch whose records all went into the batch
// before it) and recomputes the CRC.
func SetLastOffsetDelta(b []byte, delta int32) {
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(delta))
	binary.BigEndian.PutUint32(b[offCRC:], crcOf(b))
}

// compressors holds one compressor per codec, made on first use.
var compressors [5]struct {
	once sync.Once
	c    kgo.Compressor
	err  error
}

func compressorFor(codec int8) (kgo.Compressor, error) {
	if codec < 1 || codec > 4 {
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, codec)
	}
	cc := &compressors[codec]
	cc.once.Do(func() { cc.c, cc.err = newCompressor(codec) })
	return cc.c, cc.err
}

func newCompressor(codec int8) (kgo.Compressor, error) {
	var cc kgo.CompressionCodec
	switch codec {
	case 1:
		cc = kgo.GzipCompression()
	case 2:
		cc = kgo.SnappyCompression()
	case 3:
		cc = kgo.Lz4Compression()
	case 4:
		cc = kgo.ZstdCompression()
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, codec)
	}
	return kgo.DefaultCompressor(cc)
}
