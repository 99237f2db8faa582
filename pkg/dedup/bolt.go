package dedup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The buckets BoltStore keeps in its file. Handlers that write their own
// effects through ProcessTx use buckets of their own and leave these
// alone.
var (
	keysBucket   = []byte("weir.dedup.keys")   // key -> processed-at, unix ns, big endian
	expiryBucket = []byte("weir.dedup.expiry") // processed-at ++ key -> empty; ordered by age for Purge
)

// purgeBatch bounds how many keys one Purge transaction deletes, so a
// large purge does not hold the write lock (and grow the file's free
// list) in one long transaction.
const purgeBatch = 10_000

// Options configures a BoltStore.
type Options struct {
	// TTL is how long a processed key is kept; Purge deletes keys older
	// than that. Zero keeps keys until the file is deleted.
	TTL time.Duration

	// OpenTimeout bounds the wait for the file lock when another process
	// holds the file open; 10s when zero.
	OpenTimeout time.Duration

	// Now gives the time a key is recorded at; time.Now when nil.
	Now func() time.Time
}

// BoltStore is the embedded on-disk Store, a bbolt file. Every record of a
// key is committed with fsync before Process or ProcessTx returns. One
// process at a time may have the file open.
type BoltStore struct {
	db   *bolt.DB
	opts Options

	// mu guards inflight, the keys a Process call is running fn for; a
	// second call with the same key waits on the entry's channel.
	mu       sync.Mutex
	inflight map[string]chan struct{}
}

var _ Store = (*BoltStore)(nil)

// Open opens (creating if needed) the store at path.
func Open(path string, opts Options) (*BoltStore, error) {
	if opts.TTL < 0 {
		return nil, fmt.Errorf("dedup: negative TTL %v", opts.TTL)
	}
	if opts.OpenTimeout == 0 {
		opts.OpenTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("dedup: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{keysBucket, expiryBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("dedup: init %s: %w", path, err)
	}
	return &BoltStore{db: db, opts: opts, inflight: map[string]chan struct{}{}}, nil
}

// Close closes the file. Calls in progress finish first.
func (s *BoltStore) Close() error { return s.db.Close() }

// DB is the underlying bbolt database, for reading the effects handlers
// wrote through ProcessTx.
func (s *BoltStore) DB() *bolt.DB { return s.db }

// Seen reports whether key is recorded as processed.
func (s *BoltStore) Seen(key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	var seen bool
	err := s.db.View(func(tx *bolt.Tx) error {
		seen = tx.Bucket(keysBucket).Get([]byte(key)) != nil
		return nil
	})
	return seen, err
}

// MarkProcessed records key as processed now.
func (s *BoltStore) MarkProcessed(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return s.record(tx, key) })
}

// Process runs fn unless key is recorded, then records key in a
// transaction of its own. fn's effect and the record are separate: a crash
// between them runs fn again on the next delivery (at-least-once). Calls
// with different keys run fn concurrently; a call whose key is in flight
// waits for it and then sees its outcome.
func (s *BoltStore) Process(key string, fn func() error) (ran bool, err error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	release := s.claim(key)
	defer release()
	seen, err := s.Seen(key)
	if err != nil || seen {
		return false, err
	}
	if err := fn(); err != nil {
		return true, err
	}
	return true, s.MarkProcessed(key)
}

// ProcessTx runs fn inside a bbolt write transaction unless key is
// recorded, and records key in that same transaction. fn writes its effect
// through tx, into buckets of its own; if fn returns an error the
// transaction rolls back and neither the effect nor the key is stored.
// Effect and key commit atomically, so each key's effect is applied
// exactly once, across crashes, into this file. bbolt runs one write
// transaction at a time, so fn should be quick and do no outside I/O.
func (s *BoltStore) ProcessTx(key string, fn func(tx *bolt.Tx) error) (ran bool, err error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(keysBucket).Get([]byte(key)) != nil {
			return nil
		}
		ran = true
		if err := fn(tx); err != nil {
			return err
		}
		return s.record(tx, key)
	})
	return ran, err
}

// Purge deletes the keys recorded before now minus the TTL and returns how
// many it deleted. A duplicate of a purged key is processed again. With no
// TTL it deletes nothing.
func (s *BoltStore) Purge(now time.Time) (int, error) {
	if s.opts.TTL == 0 {
		return 0, nil
	}
	cutoff := stamp(now.Add(-s.opts.TTL))
	total := 0
	for {
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			keys, exp := tx.Bucket(keysBucket), tx.Bucket(expiryBucket)
			c := exp.Cursor()
			// Deleting at the cursor moves it to the next entry, so
			// read First again after each delete.
			for k, _ := c.First(); k != nil && n < purgeBatch; k, _ = c.First() {
				if bytes.Compare(k[:8], cutoff) >= 0 {
					break
				}
				if err := keys.Delete(k[8:]); err != nil {
					return err
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil || n < purgeBatch {
			return total, err
		}
	}
}

// record stores key with the current time, replacing an older record.
func (s *BoltStore) record(tx *bolt.Tx, key string) error {
	keys, exp := tx.Bucket(keysBucket), tx.Bucket(expiryBucket)
	if keys == nil || exp == nil {
		return errors.New("dedup: store buckets missing")
	}
	if old := keys.Get([]byte(key)); old != nil {
		if err := exp.Delete(append(append([]byte(nil), old...), key...)); err != nil {
			return err
		}
	}
	at := stamp(s.opts.Now())
	if err := keys.Put([]byte(key), at); err != nil {
		return err
	}
	return exp.Put(append(at, key...), []byte{})
}

// claim marks key in flight, waiting while another Process holds it, and
// returns the function that releases it.
func (s *BoltStore) claim(key string) (release func()) {
	for {
		s.mu.Lock()
		wait, busy := s.inflight[key]
		if !busy {
			done := make(chan struct{})
			s.inflight[key] = done
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.inflight, key)
				s.mu.Unlock()
				close(done)
			}
		}
		s.mu.Unlock()
		<-wait
	}
}

// stamp encodes t so that byte order is time order (for times after
// 1970, which is all a store records).
func stamp(t time.Time) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(max(t.UnixNano(), 0)))
	return b
}
