package dedup

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// pollUntil calls cond until it holds, failing the test when ctx ends
// first.
func pollUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedisProcessRunsEachKeyOnce(t *testing.T) {
	ctx := testCtx(t)
	s := newRedisStore(t, RedisOptions{TTL: time.Hour})
	runs := 0
	for i := range 3 {
		ran, err := s.Process("order-1", func() error { runs++; return nil })
		if err != nil || ran != (i == 0) {
			t.Errorf("call %d: ran=%v err=%v", i, ran, err)
		}
	}
	if runs != 1 {
		t.Errorf("handler ran %d times, want 1", runs)
	}
	rkey := s.opts.Prefix + "order-1"
	if v, err := s.Client().Get(ctx, rkey).Result(); v != doneValue || err != nil {
		t.Errorf("Redis holds %q, %v for the key; want %q", v, err, doneValue)
	}
	if ttl, err := s.Client().PTTL(ctx, rkey).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Errorf("key TTL %v, %v; want up to an hour", ttl, err)
	}
	if err := s.MarkProcessed("order-2"); err != nil {
		t.Fatal(err)
	}
	if ran, err := s.Process("order-2", func() error { t.Error("ran a marked key"); return nil }); ran || err != nil {
		t.Errorf("marked key: ran=%v err=%v", ran, err)
	}
	if seen, err := s.Seen("order-3"); seen || err != nil {
		t.Errorf("unknown key seen=%v, %v", seen, err)
	}
}

func TestRedisConcurrentProcessOfOneKeyRunsOnce(t *testing.T) {
	s := newRedisStore(t, RedisOptions{TTL: time.Hour})
	const callers = 32
	var runs, inProgress atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Process("order-1", func() error { runs.Add(1); return nil })
			switch {
			case errors.Is(err, ErrInProgress):
				inProgress.Add(1)
			case err != nil:
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want once", n)
	}
	t.Logf("%d of %d calls found the key in progress", inProgress.Load(), callers)
	if ran, err := s.Process("order-1", func() error { return nil }); ran || err != nil {
		t.Errorf("after the race: ran=%v err=%v; want skipped", ran, err)
	}
}

func TestRedisKeysExpireAfterTTL(t *testing.T) {
	ctx := testCtx(t)
	s := newRedisStore(t, RedisOptions{TTL: 200 * time.Millisecond})
	if ran, err := s.Process("order-1", func() error { return nil }); !ran || err != nil {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
	if seen, err := s.Seen("order-1"); !seen || err != nil {
		t.Fatalf("key not seen right after processing (%v)", err)
	}
	pollUntil(t, ctx, "key to expire", func() bool {
		seen, err := s.Seen("order-1")
		if err != nil {
			t.Fatal(err)
		}
		return !seen
	})
	if ran, err := s.Process("order-1", func() error { return nil }); !ran || err != nil {
		t.Errorf("expired key: ran=%v err=%v; want processed as new", ran, err)
	}
}

func TestRedisFailedHandlerReleasesClaim(t *testing.T) {
	ctx := testCtx(t)
	s := newRedisStore(t, RedisOptions{TTL: time.Hour, Lease: time.Hour})
	boom := errors.New("boom")
	if ran, err := s.Process("order-1", func() error { return boom }); !ran || !errors.Is(err, boom) {
		t.Fatalf("failing handler: ran=%v err=%v", ran, err)
	}
	if n, err := s.Client().Exists(ctx, s.opts.Prefix+"order-1").Result(); n != 0 || err != nil {
		t.Fatalf("claim left behind by a failed handler (exists=%d, %v)", n, err)
	}
	// With an hour's lease, only the release lets the retry run now.
	if ran, err := s.Process("order-1", func() error { return nil }); !ran || err != nil {
		t.Errorf("retry: ran=%v err=%v", ran, err)
	}
}

// TestRedisAbandonedClaimBlocksUntilLeaseExpires: a claim whose holder
// died (taken here as a crashed process leaves it: claimed and never
// finished) makes other calls fail with ErrInProgress rather than skip the
// event, and once the lease runs out the event is processed.
func TestRedisAbandonedClaimBlocksUntilLeaseExpires(t *testing.T) {
	ctx := testCtx(t)
	const lease = 2 * time.Second
	s := newRedisStore(t, RedisOptions{TTL: time.Hour, Lease: lease})
	state, err := claimScript.Run(ctx, s.Client(), []string{s.opts.Prefix + "order-1"}, "dead-process", lease.Milliseconds()).Int()
	if err != nil || state != 1 {
		t.Fatalf("claim: %v, %v", state, err)
	}
	ran, err := s.Process("order-1", func() error { t.Error("ran a claimed key"); return nil })
	if ran || !errors.Is(err, ErrInProgress) {
		t.Fatalf("claimed key: ran=%v err=%v; want ErrInProgress", ran, err)
	}
	if seen, _ := s.Seen("order-1"); seen {
		t.Fatal("a claimed key counts as processed")
	}
	var runs int
	pollUntil(t, ctx, "abandoned claim to expire", func() bool {
		ran, err := s.Process("order-1", func() error { runs++; return nil })
		if err != nil && !errors.Is(err, ErrInProgress) {
			t.Fatal(err)
		}
		return ran
	})
	if runs != 1 {
		t.Errorf("handler ran %d times, want once", runs)
	}
	if seen, _ := s.Seen("order-1"); !seen {
		t.Error("key not done after the handler ran")
	}
}

// TestRedisClaimIsRenewedWhileHandlerRuns: a handler running for several
// leases keeps its key; other calls keep getting ErrInProgress.
func TestRedisClaimIsRenewedWhileHandlerRuns(t *testing.T) {
	ctx := testCtx(t)
	const lease = 150 * time.Millisecond
	s := newRedisStore(t, RedisOptions{TTL: time.Hour, Lease: lease})
	serverTime := func() time.Time {
		now, err := s.Client().Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return now
	}
	ran, err := s.Process("order-1", func() error {
		until := serverTime().Add(4 * lease)
		pollUntil(t, ctx, "four leases to pass", func() bool { return serverTime().After(until) })
		if ran, err := s.Process("order-1", func() error { return nil }); ran || !errors.Is(err, ErrInProgress) {
			t.Errorf("after four leases: ran=%v err=%v; want ErrInProgress", ran, err)
		}
		return nil
	})
	if !ran || err != nil {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
}

// TestRedisReleaseTouchesOnlyItsOwnClaim: a call whose claim was lost
// (its lease ran out and the key moved on) releases nothing when its
// handler fails: the key's current value stays.
func TestRedisReleaseTouchesOnlyItsOwnClaim(t *testing.T) {
	ctx := testCtx(t)
	s := newRedisStore(t, RedisOptions{TTL: time.Hour, Lease: time.Hour})
	rkey := s.opts.Prefix + "order-1"
	if err := s.MarkProcessed("order-1"); err != nil {
		t.Fatal(err)
	}
	if n, err := releaseScript.Run(ctx, s.Client(), []string{rkey}, "someone-else").Int(); n != 0 || err != nil {
		t.Fatalf("release of another claim = %d, %v", n, err)
	}
	if seen, _ := s.Seen("order-1"); !seen {
		t.Error("a stale release deleted a done key")
	}
}

func TestRedisStoreRejectsBadOptionsAndKeys(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: testRedis.Addr})
	defer client.Close()
	for _, opts := range []RedisOptions{{TTL: -1}, {TTL: time.Microsecond}, {Lease: -1}, {Lease: time.Millisecond}} {
		if _, err := NewRedisStore(client, opts); err == nil {
			t.Errorf("NewRedisStore(%+v) accepted", opts)
		}
	}
	if _, err := NewRedisStore(nil, RedisOptions{}); err == nil {
		t.Error("NewRedisStore accepted a nil client")
	}
	s := newRedisStore(t, RedisOptions{})
	long := strings.Repeat("x", MaxKeyBytes+1)
	for _, c := range []struct {
		key  string
		want error
	}{{"", ErrNoKey}, {long, ErrKeyTooLong}} {
		if _, err := s.Process(c.key, func() error { t.Error("ran"); return nil }); !errors.Is(err, c.want) {
			t.Errorf("Process(len %d) = %v, want %v", len(c.key), err, c.want)
		}
	}
	// A key holding something else than a dedup value is an error, not a
	// skip.
	ctx := testCtx(t)
	for _, v := range []string{"42", "1", "claimed"} {
		if err := s.Client().Set(ctx, s.opts.Prefix+"foreign", v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if ran, err := s.Process("foreign", func() error { t.Error("ran"); return nil }); ran || err == nil {
			t.Errorf("foreign value %q: ran=%v err=%v; want an error", v, ran, err)
		}
	}
}
