package eos

import (
	"context"
	"errors"
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

// ErrOverflow reports a sum outside the int64 range. The store is left
// as it was: a wrapped-around value would be committed as if it were
// the sum.
var ErrOverflow = errors.New("eos: sum outside the int64 range")

// CheckedAdd returns a+b, or ErrOverflow when the sum leaves the int64
// range.
func CheckedAdd(a, b int64) (int64, error) {
	sum := a + b
	if (b > 0 && sum < a) || (b < 0 && sum > a) {
		return 0, fmt.Errorf("%w: %d + %d", ErrOverflow, a, b)
	}
	return sum, nil
}

// AddInt64 adds delta to key (absent counts as zero) and returns the sum.
// A sum outside the int64 range is ErrOverflow and changes nothing.
func AddInt64(s Store, key []byte, delta int64) (int64, error) {
	v, _, err := GetInt64(s, key)
	if err != nil {
		return 0, err
	}
	if v, err = CheckedAdd(v, delta); err != nil {
		return 0, fmt.Errorf("eos: adding to %q: %w", key, err)
	}
	return v, PutInt64(s, key, v)
}

// Count counts input records per key and emits each new count, keyed by
// the input's key, to the default output topic.
func Count() Process {
	return Sum(func(*kgo.Record) (int64, error) { return 1, nil })
}

// Sum adds valueOf(record) per key and emits each new sum, keyed by the
// input's key. An error from valueOf, a sum outside the int64 range
// (ErrOverflow) or a key the store cannot hold (ErrInvalidKey) aborts the
// transaction and stops the processor with the error: the record is
// consumed again after a restart, so such input stops the application
// until it is dealt with. A processor that should skip such records
// instead checks them in its own Process function (CheckedAdd), as
// examples/inventory does.
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
