package dedup

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// runPurgeEvery starts PurgeEvery in a goroutine and returns the function
// that stops it and waits for it to return.
func runPurgeEvery(t *testing.T, p Purger, interval time.Duration, onErr func(error)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- PurgeEvery(ctx, p, interval, onErr) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("PurgeEvery returned %v", err)
			}
		case <-testCtx(t).Done():
			t.Fatal("PurgeEvery did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestPurgeEveryPurgesPGStore(t *testing.T) {
	ctx := testCtx(t)
	old := time.Now().Add(-2 * time.Hour)
	var recordAt atomic.Pointer[time.Time]
	recordAt.Store(&old)
	s := newPGStore(t, newPool(t, newDatabase(t)), PGOptions{TTL: time.Hour, Now: func() time.Time { return *recordAt.Load() }})
	if err := s.MarkProcessed("old"); err != nil {
		t.Fatal(err)
	}
	fresh := time.Now()
	recordAt.Store(&fresh)
	if err := s.MarkProcessed("fresh"); err != nil {
		t.Fatal(err)
	}
	runPurgeEvery(t, s, 10*time.Millisecond, func(err error) { t.Error(err) })
	pollUntil(t, ctx, "old key to be purged", func() bool {
		seen, err := s.SeenContext(ctx, "old")
		if err != nil {
			t.Fatal(err)
		}
		return !seen
	})
	if seen, _ := s.Seen("fresh"); !seen {
		t.Error("scheduled purge removed a key younger than the TTL")
	}
}

func TestPurgeEveryPurgesBoltStore(t *testing.T) {
	ctx := testCtx(t)
	var recordAt atomic.Pointer[time.Time]
	old := time.Now().Add(-2 * time.Hour)
	recordAt.Store(&old)
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{TTL: time.Hour, Now: func() time.Time { return *recordAt.Load() }})
	if err := s.MarkProcessed("old"); err != nil {
		t.Fatal(err)
	}
	fresh := time.Now()
	recordAt.Store(&fresh)
	if err := s.MarkProcessed("fresh"); err != nil {
		t.Fatal(err)
	}
	runPurgeEvery(t, BoltPurger(s), 10*time.Millisecond, func(err error) { t.Error(err) })
	pollUntil(t, ctx, "old key to be purged", func() bool {
		seen, err := s.Seen("old")
		if err != nil {
			t.Fatal(err)
		}
		return !seen
	})
	if seen, _ := s.Seen("fresh"); !seen {
		t.Error("scheduled purge removed a key younger than the TTL")
	}
}

// TestPurgeEveryKeepsGoingAfterErrorsAndStopsWithItsContext: failed
// purges go to onErr and the schedule goes on; once the context ends,
// PurgeEvery returns.
func TestPurgeEveryKeepsGoingAfterErrorsAndStopsWithItsContext(t *testing.T) {
	ctx := testCtx(t)
	var calls, errs atomic.Int64
	boom := errors.New("boom")
	p := PurgerFunc(func(context.Context, time.Time) (int, error) {
		calls.Add(1)
		return 0, boom
	})
	stop := runPurgeEvery(t, p, time.Millisecond, func(err error) {
		if !errors.Is(err, boom) {
			t.Errorf("onErr got %v", err)
		}
		errs.Add(1)
	})
	pollUntil(t, ctx, "three failed purges", func() bool { return errs.Load() >= 3 })
	stop() // fails the test unless PurgeEvery returns
	// A purge cut short by the end of the context is not reported.
	if c, e := calls.Load(), errs.Load(); e != c && e != c-1 {
		t.Errorf("%d purges failed but onErr saw %d", c, e)
	}
}

func TestPurgeEveryRejectsBadArguments(t *testing.T) {
	ctx := testCtx(t)
	p := PurgerFunc(func(context.Context, time.Time) (int, error) { t.Error("purged"); return 0, nil })
	for _, interval := range []time.Duration{0, -time.Second} {
		if err := PurgeEvery(ctx, p, interval, nil); err == nil {
			t.Errorf("interval %v accepted", interval)
		}
	}
	if err := PurgeEvery(ctx, nil, time.Second, nil); err == nil {
		t.Error("nil purger accepted")
	}
}
