package eos

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Aggregates store int64 values as decimal text, readable in a changelog
// dump and in an interactive query.

// GetInt64 reads key as an int64; ok is false when the key is absent.
func GetInt64(s Store, key []byte) (v int64, ok bool, err error) {
	b, err := s.Get(key)
	if err != nil || b == nil {
		return 0, false, err
	}
	v, err = strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("eos: value of %q is not an int64: %w", key, err)
	}
	return v, true, nil
}

// PutInt64 sets key to v.
func PutInt64(s Store, key []byte, v int64) error {
	return s.Put(key, strconv.AppendInt(nil, v, 10))
}

// AddInt64 adds delta to key (absent counts as zero) and returns the sum.
func AddInt64(s Store, key []byte, delta int64) (int64, error) {
	v, _, err := GetInt64(s, key)
	if err != nil {
		return 0, err
	}
	v += delta
	return v, PutInt64(s, key, v)
}

// Count counts input records per key and emits each new count, keyed by
// the input's key, to the default output topic.
func Count() Process {
	return Sum(func(*kgo.Record) (int64, error) { return 1, nil })
}

// Sum adds valueOf(record) per key and emits each new sum, keyed by the
// input's key. An error from valueOf aborts the transaction and stops the
// processor.
func Sum(valueOf func(*kgo.Record) (int64, error)) Process {
	return func(_ context.Context, in *kgo.Record, s Store) ([]*kgo.Record, error) {
		if len(in.Key) == 0 {
			return nil, nil // nothing to aggregate by, as Kafka Streams drops null keys
		}
		d, err := valueOf(in)
		if err != nil {
			return nil, err
		}
		v, err := AddInt64(s, in.Key, d)
		if err != nil {
			return nil, err
		}
		return []*kgo.Record{{Key: in.Key, Value: strconv.AppendInt(nil, v, 10)}}, nil
	}
}

// Latest keeps the latest value per key (a null value deletes the key)
// and emits it, keyed by the input's key.
func Latest() Process {
	return func(_ context.Context, in *kgo.Record, s Store) ([]*kgo.Record, error) {
		if len(in.Key) == 0 {
			return nil, nil
		}
		var err error
		if in.Value == nil {
			err = s.Delete(in.Key)
		} else {
			err = s.Put(in.Key, in.Value)
		}
		if err != nil {
			return nil, err
		}
		return []*kgo.Record{{Key: in.Key, Value: in.Value}}, nil
	}
}
