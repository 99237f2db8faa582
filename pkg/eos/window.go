package eos

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// streamTimeKey holds, in a windowed store, the largest record timestamp
// the partition has processed (Kafka Streams' stream time). It lives in
// the store, so it commits and restores with the counts.
var streamTimeKey = []byte("\x00stream-time")

// WindowKey is the store and output key of key's window starting at
// start: "<key>@<start in Unix milliseconds>".
func WindowKey(key []byte, start time.Time) []byte {
	return strconv.AppendInt(append(append([]byte(nil), key...), '@'), start.UnixMilli(), 10)
}

// WindowedCount counts records per key in tumbling windows of the given
// size by event time (the record timestamp), and emits each new count
// keyed by WindowKey. A window accepts records until stream time passes
// its end plus grace; a record for a closed window is dropped, as Kafka
// Streams drops late records. Closed windows stay in the store.
func WindowedCount(size, grace time.Duration) (Process, error) {
	if size <= 0 || grace < 0 {
		return nil, errors.New("eos: a window needs a positive size and a grace period of zero or more")
	}
	sizeMs, graceMs := size.Milliseconds(), grace.Milliseconds()
	if sizeMs == 0 {
		return nil, errors.New("eos: window sizes are counted in milliseconds")
	}
	return func(_ context.Context, in *kgo.Record, s Store) ([]*kgo.Record, error) {
		if len(in.Key) == 0 {
			return nil, nil
		}
		ts := in.Timestamp.UnixMilli()
		streamTime, seen, err := GetInt64(s, streamTimeKey)
		if err != nil {
			return nil, err
		}
		if !seen || ts > streamTime {
			streamTime = ts
			if err := PutInt64(s, streamTimeKey, streamTime); err != nil {
				return nil, err
			}
		}
		start := ts - ((ts%sizeMs)+sizeMs)%sizeMs // floor, also before 1970
		if start+sizeMs+graceMs <= streamTime {
			return nil, nil // late: the window has closed
		}
		key := WindowKey(in.Key, time.UnixMilli(start))
		n, err := AddInt64(s, key, 1)
		if err != nil {
			return nil, err
		}
		return []*kgo.Record{{Key: key, Value: strconv.AppendInt(nil, n, 10), Timestamp: in.Timestamp}}, nil
	}, nil
}
