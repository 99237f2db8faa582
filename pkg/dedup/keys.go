package dedup

import (
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KeyFunc extracts a record's idempotency key. It returns ErrNoKey (or an
// error wrapping it) when the record carries none.
type KeyFunc func(*kgo.Record) (string, error)

// KeyFromHeader takes the key from the first header called name, such as
// an order id the producer set. A missing or empty header is ErrNoKey.
func KeyFromHeader(name string) KeyFunc {
	return func(r *kgo.Record) (string, error) {
		for _, h := range r.Headers {
			if h.Key == name {
				if len(h.Value) == 0 {
					break
				}
				return string(h.Value), nil
			}
		}
		return "", fmt.Errorf("%w: no header %q in %s[%d]@%d", ErrNoKey, name, r.Topic, r.Partition, r.Offset)
	}
}

// KeyFromRecordKey takes the record key. Use it only where each record key
// names one event; a nil or empty record key is ErrNoKey.
func KeyFromRecordKey() KeyFunc {
	return func(r *kgo.Record) (string, error) {
		if len(r.Key) == 0 {
			return "", fmt.Errorf("%w: empty record key in %s[%d]@%d", ErrNoKey, r.Topic, r.Partition, r.Offset)
		}
		return string(r.Key), nil
	}
}

// KeyFromOffset names a record by its place in the log,
// "topic/partition/offset". It catches redeliveries, not duplicates a
// producer wrote twice. A topic deleted and created again reuses offsets,
// so such a topic needs a fresh store.
func KeyFromOffset() KeyFunc {
	return func(r *kgo.Record) (string, error) {
		if r.Topic == "" {
			return "", fmt.Errorf("%w: record has no topic", ErrNoKey)
		}
		return r.Topic + "/" + strconv.FormatInt(int64(r.Partition), 10) + "/" + strconv.FormatInt(r.Offset, 10), nil
	}
}
