package dedup

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRedisClaimIsRenewedAfterTheCallersContextEnds: the handler takes no
// context and runs to its end whatever happens to the caller's; the
// claim must stay renewed while it runs, or another process would claim
// the key after a lease and run the handler a second time, concurrently.
func TestRedisClaimIsRenewedAfterTheCallersContextEnds(t *testing.T) {
	ctx := testCtx(t)
	const lease = 150 * time.Millisecond
	s := newRedisStore(t, RedisOptions{TTL: time.Hour, Lease: lease})
	other, err := NewRedisStore(s.Client(), s.opts) // another consumer sharing the keys
	if err != nil {
		t.Fatal(err)
	}
	serverTime := func() time.Time {
		now, err := s.Client().Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return now
	}
	callCtx, cancel := context.WithCancel(ctx)
	ran, err := s.ProcessContext(callCtx, "order-1", func() error {
		cancel() // the consumer is shutting down; this handler finishes anyway
		until := serverTime().Add(4 * lease)
		pollUntil(t, ctx, "four leases to pass", func() bool { return serverTime().After(until) })
		if ran, err := other.Process("order-1", func() error { return nil }); ran || !errors.Is(err, ErrInProgress) {
			t.Errorf("after four leases: ran=%v err=%v; want ErrInProgress (the handler is still running)", ran, err)
		}
		return nil
	})
	if !ran || err != nil {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
	if seen, err := other.Seen("order-1"); !seen || err != nil {
		t.Errorf("key not done after the handler returned: seen=%v err=%v", seen, err)
	}
}

// TestRedisPanickingHandlerReleasesItsClaim: a handler that panics (and a
// caller that recovers, as many consumer loops do) must not leave its
// claim renewed forever, which would block the key for good: the claim
// is released, as for a handler that failed, and the panic goes on up.
func TestRedisPanickingHandlerReleasesItsClaim(t *testing.T) {
	s := newRedisStore(t, RedisOptions{TTL: time.Hour, Lease: 150 * time.Millisecond})
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the handler's panic", p)
			}
		}()
		s.Process("order-1", func() error { panic("boom") })
	}()
	ran, err := s.Process("order-1", func() error { return nil })
	if !ran || err != nil {
		t.Fatalf("after a panicking handler: ran=%v err=%v; want the key free to run", ran, err)
	}
}

// TestRedisNilHandlerIsRefused: bad input is an error, and claims nothing.
func TestRedisNilHandlerIsRefused(t *testing.T) {
	s := newRedisStore(t, RedisOptions{TTL: time.Hour})
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("panic %v", p)
			}
		}()
		if _, err := s.Process("order-1", nil); err == nil {
			t.Error("nil handler accepted")
		}
	}()
	if ran, err := s.Process("order-1", func() error { return nil }); !ran || err != nil {
		t.Errorf("key blocked after a refused call: ran=%v err=%v", ran, err)
	}
}
