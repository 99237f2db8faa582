package broker

import "sync"

// Fetches read record sets into pooled buffers and give them back once the
// server has copied the response into its connection buffer. Without the
// pool every partition read left a buffer of up to the partition's max
// bytes to the garbage collector, and a broker sharing its process with
// consumers (pkg/weir) made their collections more frequent.

// maxPooledReadBytes bounds the buffers kept for reuse: a read that had to
// grow past it (a single huge batch) is left to the collector rather than
// pinned in the pool.
const maxPooledReadBytes = 8 << 20

var readBufferPool = sync.Pool{New: func() any { return new([]byte) }}

// readBuffers are the buffers one fetch holds.
type readBuffers struct {
	held []*[]byte
}

// get takes a buffer from the pool.
func (r *readBuffers) get() *[]byte {
	return readBufferPool.Get().(*[]byte)
}

// hold keeps buf, whose storage data now lives in (it may have grown),
// until release.
func (r *readBuffers) hold(buf *[]byte, data []byte) {
	if cap(data) > cap(*buf) {
		*buf = data[:0]
	}
	r.held = append(r.held, buf)
}

// release returns every held buffer to the pool. The record sets read
// into them must no longer be read.
func (r *readBuffers) release() {
	for _, buf := range r.held {
		if cap(*buf) <= maxPooledReadBytes {
			*buf = (*buf)[:0]
			readBufferPool.Put(buf)
		}
	}
	clear(r.held)
	r.held = r.held[:0]
}
