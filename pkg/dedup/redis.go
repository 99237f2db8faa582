package dedup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix starts every Redis key a RedisStore writes when
// RedisOptions names no prefix.
const DefaultRedisPrefix = "weir:dedup:"

// DefaultLease is how long a RedisStore claim lasts when RedisOptions
// gives no Lease.
const DefaultLease = 30 * time.Second

// ErrInProgress reports a key that another call claimed and has neither
// finished nor given up: its handler may be running right now, in this
// process or another. The record must not be skipped (its effect may not
// happen) nor run (it may happen twice): retry it later. A claim whose
// holder died expires after the lease, and the retry then runs it.
var ErrInProgress = errors.New("dedup: idempotency key is being processed elsewhere")

// The values a RedisStore keeps under a key: doneValue once the handler
// succeeded, claimPrefix plus the claimer's token while it runs.
const (
	doneValue   = "done"
	claimPrefix = "processing:"
)

// RedisOptions configures a RedisStore.
type RedisOptions struct {
	// Prefix starts every Redis key the store writes, so that keys of
	// several consumers (or applications) sharing a server stay apart;
	// DefaultRedisPrefix when empty.
	Prefix string

	// TTL is how long a processed key is remembered; Redis expires it by
	// itself, so a RedisStore needs no Purge. Zero keeps keys until they
	// are deleted or evicted.
	TTL time.Duration

	// Lease is how long a claim blocks other calls with the same key
	// after its holder stopped renewing it (its process died); DefaultLease
	// when zero. While the handler runs, the claim is renewed every third
	// of the lease.
	Lease time.Duration
}

// RedisStore is the Store kept in Redis: each key is claimed with SET NX
// and a short lease before the handler runs, and marked done with the TTL
// after it succeeded. Like BoltStore.Process it gives at-least-once
// handler execution with duplicates suppressed: a crash after the
// handler's effect and before the key is marked done runs the handler
// again once the lease has expired.
//
// Redis's own durability applies: a key acknowledged by a server that
// loses it (no persistence, an asynchronous replica promoted after a
// failover, eviction under maxmemory) is forgotten, and its next duplicate
// runs the handler again.
type RedisStore struct {
	client redis.UniversalClient
	opts   RedisOptions
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store keeping its keys in client's database. The
// client stays the caller's: the store does not close it.
func NewRedisStore(client redis.UniversalClient, opts RedisOptions) (*RedisStore, error) {
	if client == nil {
		return nil, errors.New("dedup: nil Redis client")
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("dedup: negative TTL %v", opts.TTL)
	}
	if opts.TTL > 0 && opts.TTL < time.Millisecond {
		return nil, fmt.Errorf("dedup: TTL %v is below Redis's millisecond resolution", opts.TTL)
	}
	if opts.Lease < 0 {
		return nil, fmt.Errorf("dedup: negative lease %v", opts.Lease)
	}
	if opts.Lease == 0 {
		opts.Lease = DefaultLease
	}
	if opts.Lease < 3*time.Millisecond {
		return nil, fmt.Errorf("dedup: lease %v is too short to renew (at least 3ms)", opts.Lease)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultRedisPrefix
	}
	return &RedisStore{client: client, opts: opts}, nil
}

// Client is the Redis client the store uses.
func (s *RedisStore) Client() redis.UniversalClient { return s.client }

// Seen reports whether key is recorded as processed. A key whose handler
// is still running is not seen.
func (s *RedisStore) Seen(key string) (bool, error) {
	return s.SeenContext(context.Background(), key)
}

// SeenContext is Seen bounded by ctx.
func (s *RedisStore) SeenContext(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	v, err := s.client.Get(ctx, s.opts.Prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dedup: seen %q: %w", key, err)
	}
	return v == doneValue, nil
}

// MarkProcessed records key as processed now, with the TTL, replacing
// whatever the key held (a claim included).
func (s *RedisStore) MarkProcessed(key string) error {
	return s.MarkProcessedContext(context.Background(), key)
}

// MarkProcessedContext is MarkProcessed bounded by ctx.
func (s *RedisStore) MarkProcessedContext(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.client.Set(ctx, s.opts.Prefix+key, doneValue, s.opts.TTL).Err(); err != nil {
		return fmt.Errorf("dedup: mark %q: %w", key, err)
	}
	return nil
}

// Process runs fn unless key is recorded as processed, and records key
// with the TTL once fn returns nil. See ProcessContext.
func (s *RedisStore) Process(key string, fn func() error) (ran bool, err error) {
	return s.ProcessContext(context.Background(), key, fn)
}

// ProcessContext claims key (SET NX with the lease), runs fn, and marks
// key done with the TTL once fn returns nil. If fn fails, the claim is
// released so the next delivery runs fn again. A key already done is
// skipped (ran false, nil error); a key claimed by a call that has not
// finished returns ErrInProgress without running fn, so the consumer
// retries the record later instead of dropping it.
//
// The claim is renewed while fn runs, so a slow handler keeps its key. If
// the process dies inside fn, the claim expires after the lease and the
// next call runs fn again: the event is not lost, and its effect may
// happen twice.
func (s *RedisStore) ProcessContext(ctx context.Context, key string, fn func() error) (ran bool, err error) {
	if fn == nil {
		return false, errNilHandler
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	rkey := s.opts.Prefix + key
	token, err := newClaimToken()
	if err != nil {
		return false, err
	}
	reply, err := claimScript.Run(ctx, s.client, []string{rkey}, token, s.opts.Lease.Milliseconds()).Result()
	if err != nil {
		return false, fmt.Errorf("dedup: claim %q: %w", key, err)
	}
	switch state, _ := reply.(string); {
	case reply == int64(1):
		// Claimed: run fn below.
	case state == doneValue:
		return false, nil
	case strings.HasPrefix(state, claimPrefix):
		return false, fmt.Errorf("%w: %q", ErrInProgress, key)
	default:
		return false, fmt.Errorf("dedup: key %q holds %v, not a dedup value", rkey, reply)
	}

	fnErr := s.runClaimed(ctx, rkey, token, fn)
	// The claim's last step runs even if ctx ended during fn: an
	// abandoned claim would block the key for a whole lease.
	ctx = context.WithoutCancel(ctx)
	if fnErr != nil {
		if err := releaseScript.Run(ctx, s.client, []string{rkey}, token).Err(); err != nil {
			return true, errors.Join(fnErr, fmt.Errorf("dedup: release %q: %w", key, err))
		}
		return true, fnErr
	}
	// Marked done even if the lease was lost meanwhile: the effect has
	// happened, and a second claimer, if any, skips from now on.
	if err := s.client.Set(ctx, rkey, doneValue, s.opts.TTL).Err(); err != nil {
		return true, fmt.Errorf("dedup: mark %q: %w", key, err)
	}
	return true, nil
}

// runClaimed runs fn while renewing the claim token holds on rkey. If fn
// panics, the renewal stops and the claim is released before the panic
// goes on: a caller that recovers must not find the key claimed forever.
func (s *RedisStore) runClaimed(ctx context.Context, rkey, token string, fn func() error) error {
	// fn takes no context and runs to its end whatever happens to ctx,
	// so its claim is renewed until it returns: a claim that lapsed
	// while fn still ran would let another call run fn concurrently.
	stopRenew := s.renew(context.WithoutCancel(ctx), rkey, token)
	returned := false
	defer func() {
		stopRenew()
		if !returned {
			releaseScript.Run(context.WithoutCancel(ctx), s.client, []string{rkey}, token)
		}
	}()
	err := fn()
	returned = true
	return err
}

// renew extends the claim every third of the lease until the returned
// function is called. A failed renewal is retried at the next tick; the
// lease leaves room for two misses.
func (s *RedisStore) renew(ctx context.Context, rkey, token string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				renewScript.Run(ctx, s.client, []string{rkey}, token, s.opts.Lease.Milliseconds())
			}
		}
	}()
	return func() { cancel(); <-done }
}

// claimScript sets KEYS[1] to the claim ARGV[1] for ARGV[2] ms unless the
// key exists, returning the integer 1, and otherwise returns the string
// the key holds; in one step, so no expiry can fall between the test and
// the read. The integer cannot be mistaken for any value a key holds.
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], 'processing:' .. ARGV[1], 'NX', 'PX', ARGV[2]) then
	return 1
end
return redis.call('GET', KEYS[1])
`)

// releaseScript deletes KEYS[1] if it still holds the claim ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'processing:' .. ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// renewScript extends KEYS[1] to ARGV[2] ms if it still holds the claim
// ARGV[1].
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'processing:' .. ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// newClaimToken names one claim, so that a call releases or renews only
// its own claim and never one taken after its lease expired.
func newClaimToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("dedup: claim token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
