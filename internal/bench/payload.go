package bench

import "crypto/rand"

// payloadPoolBytes is the size of the random pool record values are cut
// from. It is larger than any producer batch and far larger than the 64 KiB
// window of snappy and lz4, so a compressor sees no repeats inside a batch.
const payloadPoolBytes = 4 << 20

// payloadPool hands out record values of one size as consecutive,
// non-overlapping slices of random bytes. kgo never writes to a record's
// value, so the slices are shared rather than allocated per record.
type payloadPool struct {
	buf    []byte
	size   int
	chunks int
}

func newPayloadPool(size int) payloadPool {
	chunks := max(1, payloadPoolBytes/max(size, 1))
	buf := make([]byte, chunks*size)
	rand.Read(buf)
	return payloadPool{buf: buf, size: size, chunks: chunks}
}

// value returns the value of the i-th record.
func (p payloadPool) value(i int) []byte {
	off := (i % p.chunks) * p.size
	return p.buf[off : off+p.size : off+p.size]
}
