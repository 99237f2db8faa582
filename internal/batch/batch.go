// Package batch reads, validates and builds Kafka record batches (magic v2)
// as they travel on the wire and sit in the log.
//
// Only the fixed 61-byte header is interpreted here; the records inside are
// left as they arrived, so the log can store and serve a batch byte for byte.
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of a v2 record batch header, up to and including
// the record count.
const HeaderSize = 61

// Offsets of fields within a v2 batch header.
const (
	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
)

// lengthPrefix is the part of the batch before the length field counts.
const lengthPrefix = 12

// Attribute bits.
const (
	AttrCompressionMask = 0x07
	AttrTimestampType   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned by Parse and Validate. ErrCorrupt maps to Kafka's
// CORRUPT_MESSAGE; ErrUnsupportedMagic to UNSUPPORTED_FOR_MESSAGE_FORMAT.
var (
	ErrCorrupt          = errors.New("corrupt record batch")
	ErrUnsupportedMagic = errors.New("unsupported record batch magic")
	ErrTruncated        = errors.New("truncated record batch")
)

// Header is the decoded fixed header of a v2 record batch.
type Header struct {
	BaseOffset      int64
	Length          int32 // bytes after the length field
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Size is the full size of the batch in bytes.
func (h Header) Size() int { return lengthPrefix + int(h.Length) }

// LastOffset is the offset of the last record in the batch.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset that follows the batch.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Transactional reports whether the batch belongs to a transaction.
func (h Header) Transactional() bool { return h.Attributes&AttrTransactional != 0 }

// Control reports whether the batch is a control batch (a transaction marker).
func (h Header) Control() bool { return h.Attributes&AttrControl != 0 }

// Compression is the compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
func (h Header) Compression() int8 { return int8(h.Attributes & AttrCompressionMask) }

// Idempotent reports whether the batch carries a producer id.
func (h Header) Idempotent() bool { return h.ProducerID >= 0 }

// LastSequence is the sequence of the last record, wrapping at int32 max
// as Kafka's sequences do.
func (h Header) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return -1
	}
	return int32((int64(h.BaseSequence) + int64(h.LastOffsetDelta)) % (1 << 31))
}

// ParseHeader decodes the header of the batch at the start of b. It checks
// that the length is sane and that b holds the whole batch, but not the CRC.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < offMagic+1 {
		return Header{}, ErrTruncated
	}
	var h Header
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	h.Length = int32(binary.BigEndian.Uint32(b[offLength:]))
	h.LeaderEpoch = int32(binary.BigEndian.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: %d", ErrUnsupportedMagic, h.Magic)
	}
	if h.Length < HeaderSize-lengthPrefix {
		return h, fmt.Errorf("%w: length %d below header size", ErrCorrupt, h.Length)
	}
	if len(b) < HeaderSize {
		return h, ErrTruncated
	}
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSequence:]))
	h.NumRecords = int32(binary.BigEndian.Uint32(b[offRecordCount:]))
	if len(b) < h.Size() {
		return h, ErrTruncated
	}
	return h, nil
}

// CheckCRC verifies the CRC-32C of a whole batch whose header is h.
func CheckCRC(b []byte, h Header) error {
	if got := crc32.Checksum(b[offAttributes:h.Size()], castagnoli); got != h.CRC {
		return fmt.Errorf("%w: crc %08x, header says %08x", ErrCorrupt, got, h.CRC)
	}
	return nil
}

// Validate decodes and checks one batch that must fill b exactly, as a
// producer sends it: magic 2, a consistent length, a matching CRC, a record
// count that agrees with the offset delta, and records present.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		if errors.Is(err, ErrTruncated) {
			return h, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return h, err
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("%w: batch length %d, %d bytes present", ErrCorrupt, h.Size(), len(b))
	}
	if err := CheckCRC(b, h); err != nil {
		return h, err
	}
	if h.NumRecords <= 0 || h.LastOffsetDelta < 0 || int64(h.NumRecords) != int64(h.LastOffsetDelta)+1 {
		return h, fmt.Errorf("%w: %d records with last offset delta %d", ErrCorrupt, h.NumRecords, h.LastOffsetDelta)
	}
	if h.Compression() > 4 {
		return h, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, h.Compression())
	}
	return h, nil
}

// SetBaseOffset rewrites the base offset of the batch at the start of b.
// The base offset lies outside the CRC, so the batch stays valid.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(offset))
}

// SetLeaderEpoch rewrites the partition leader epoch, also outside the CRC.
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// Crc computes the CRC-32C of the part of a batch the CRC covers.
func crcOf(b []byte) uint32 { return crc32.Checksum(b[offAttributes:], castagnoli) }

// SetLogAppendTime stamps the batch with the broker's time, as
// message.timestamp.type=LogAppendTime asks: the timestamp-type attribute
// is set, the max timestamp becomes ts, and the CRC is recomputed.
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | AttrTimestampType
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	binary.BigEndian.PutUint32(b[offCRC:], crcOf(b))
}
