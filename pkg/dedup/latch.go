package dedup

import (
	"context"
	"sync"
)

// keyLatch serialises the calls in one process that share a key, so that
// a second call waits in memory instead of holding a database connection
// while it waits on the first call's row lock. With a small pool, calls
// blocked on the lock could otherwise take every connection and starve
// the first call, whose handler may need one.
type keyLatch struct {
	mu       sync.Mutex
	inflight map[string]chan struct{} // key -> closed when its holder is done
}

// acquire marks key in flight, waiting while another call holds it or
// until ctx ends, and returns the function that releases it.
func (l *keyLatch) acquire(ctx context.Context, key string) (release func(), err error) {
	for {
		l.mu.Lock()
		if l.inflight == nil {
			l.inflight = map[string]chan struct{}{}
		}
		wait, busy := l.inflight[key]
		if !busy {
			done := make(chan struct{})
			l.inflight[key] = done
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.inflight, key)
				l.mu.Unlock()
				close(done)
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
