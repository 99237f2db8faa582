package dedup

import (
	"errors"
	"fmt"
)

// MaxKeyBytes is the longest idempotency key a store accepts. Business
// keys are short; a key this long is almost certainly a payload mistaken
// for a key.
const MaxKeyBytes = 1024

// ErrNoKey reports a record that carries no idempotency key where the
// KeyFunc looks for one. Such a record is not processed: running it
// without a key would give up the guarantee silently.
var ErrNoKey = errors.New("dedup: record has no idempotency key")

// ErrKeyTooLong reports a key longer than MaxKeyBytes.
var ErrKeyTooLong = fmt.Errorf("dedup: idempotency key longer than %d bytes", MaxKeyBytes)

// Store remembers which idempotency keys were processed.
type Store interface {
	// Seen reports whether key was recorded as processed.
	Seen(key string) (bool, error)

	// MarkProcessed records key as processed, durably, whether or not it
	// was recorded before.
	MarkProcessed(key string) error

	// Process runs fn unless key was recorded as processed, and records
	// key once fn returns nil. ran reports whether fn was called; an
	// error from fn is returned and leaves key unrecorded. Two calls with
	// the same key do not run fn concurrently: the second waits for the
	// first (BoltStore, PGStore) or fails with ErrInProgress so that the
	// record is retried later (RedisStore, as long as the first holder
	// does not stall for longer than its lease). A crash after fn's
	// effect but before the record means the next call runs fn again.
	Process(key string, fn func() error) (ran bool, err error)
}

// errNilHandler refuses a call without a handler to run.
var errNilHandler = errors.New("dedup: nil handler")

// checkKey validates a key before it reaches a store.
func checkKey(key string) error {
	if key == "" {
		return ErrNoKey
	}
	if len(key) > MaxKeyBytes {
		return ErrKeyTooLong
	}
	return nil
}
