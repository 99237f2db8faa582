package dedup

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	bolt "go.etcd.io/bbolt"
)

// Wrap returns a handler that runs handler for records whose key, taken by
// keyFn, store has not recorded, and records the key once handler
// succeeds. Records already processed return nil without running handler.
// A record without a key returns the KeyFunc's error and is not processed.
// See Store.Process for what a crash inside the handler means.
func Wrap(store Store, keyFn KeyFunc, handler func(*kgo.Record) error) func(*kgo.Record) error {
	return func(r *kgo.Record) error {
		key, err := keyFn(r)
		if err != nil {
			return err
		}
		_, err = store.Process(key, func() error { return handler(r) })
		if err != nil {
			return fmt.Errorf("dedup: record %s[%d]@%d key %q: %w", r.Topic, r.Partition, r.Offset, key, err)
		}
		return nil
	}
}

// WrapTx is Wrap for handlers whose effect lives in the store's own bbolt
// file: handler writes its effect through tx, which also records the key,
// so effect and key commit atomically (see BoltStore.ProcessTx).
func WrapTx(store *BoltStore, keyFn KeyFunc, handler func(*bolt.Tx, *kgo.Record) error) func(*kgo.Record) error {
	return func(r *kgo.Record) error {
		key, err := keyFn(r)
		if err != nil {
			return err
		}
		_, err = store.ProcessTx(key, func(tx *bolt.Tx) error { return handler(tx, r) })
		if err != nil {
			return fmt.Errorf("dedup: record %s[%d]@%d key %q: %w", r.Topic, r.Partition, r.Offset, key, err)
		}
		return nil
	}
}
