package dedup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Purger is a store whose expired keys are deleted by a call: PGStore, and
// BoltStore through BoltPurger. RedisStore needs none; Redis expires its
// keys by itself.
type Purger interface {
	// Purge deletes the keys recorded before now minus the store's TTL
	// and returns how many it deleted.
	Purge(ctx context.Context, now time.Time) (int, error)
}

// PurgerFunc makes a function a Purger.
type PurgerFunc func(ctx context.Context, now time.Time) (int, error)

// Purge calls f.
func (f PurgerFunc) Purge(ctx context.Context, now time.Time) (int, error) { return f(ctx, now) }

// BoltPurger is the Purger of a BoltStore. A bbolt purge cannot be
// interrupted once begun; ctx is checked before it starts.
func BoltPurger(s *BoltStore) Purger {
	return PurgerFunc(func(ctx context.Context, now time.Time) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return s.Purge(now)
	})
}

// PurgeEvery purges p at once and then every interval, with the current
// time, until ctx ends; run it in a goroutine of its own. An error of one
// purge goes to onErr (logged at warning level when onErr is nil) and the
// next purge runs on schedule. It returns when ctx ends, after any purge
// in progress, or at once with an error if interval is not positive.
func PurgeEvery(ctx context.Context, p Purger, interval time.Duration, onErr func(error)) error {
	if p == nil {
		return errors.New("dedup: nil purger")
	}
	if interval <= 0 {
		return fmt.Errorf("dedup: purge interval %v is not positive", interval)
	}
	if onErr == nil {
		onErr = func(err error) { slog.Warn("dedup: purge failed", "err", err) }
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := p.Purge(ctx, time.Now()); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
