package log

import (
	"log/slog"
	"math"
	"time"
)

// Defaults follow Apache Kafka's broker defaults for the same settings.
const (
	DefaultSegmentBytes       = 1 << 30
	DefaultSegmentMs          = 7 * 24 * 60 * 60 * 1000
	DefaultRetentionMs        = 7 * 24 * 60 * 60 * 1000
	DefaultRetentionBytes     = -1
	DefaultIndexIntervalBytes = 4096
)

// maxSegmentBytes bounds a segment so that every file position fits the
// uint32 entries of the offset index.
const maxSegmentBytes = math.MaxUint32

// Config holds the settings of one partition log. Start from DefaultConfig
// and override fields: a zero SegmentBytes, SegmentMs or IndexIntervalBytes
// means the default, but RetentionMs and RetentionBytes are taken as given,
// so a zero there means "retain nothing" and -1 means "no limit".
type Config struct {
	SegmentBytes       int64            // log.segment.bytes: roll before a segment would exceed this
	SegmentMs          int64            // log.roll.ms: roll a segment whose first append is older than this
	RetentionMs        int64            // log.retention.ms; -1 keeps data forever
	RetentionBytes     int64            // log.retention.bytes; -1 means no size limit
	IndexIntervalBytes int              // log.index.interval.bytes: bytes between offset index entries
	FS                 FS               // nil means OSFS
	Now                func() time.Time // nil means time.Now
	Logger             *slog.Logger     // nil means slog.Default(); recovery and I/O trouble are logged
	// OnSync, when set, is told after each fsync that made appended
	// data durable how long the fsyncs took and how many offsets they
	// covered (for the flush metrics); it must not block.
	OnSync func(d time.Duration, offsets int64)
}

// DefaultConfig returns Kafka's defaults on the real file system.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       DefaultSegmentBytes,
		SegmentMs:          DefaultSegmentMs,
		RetentionMs:        DefaultRetentionMs,
		RetentionBytes:     DefaultRetentionBytes,
		IndexIntervalBytes: DefaultIndexIntervalBytes,
	}
}

// normalized fills in defaults for unset fields.
func (c Config) normalized() Config {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentBytes > maxSegmentBytes {
		c.SegmentBytes = maxSegmentBytes
	}
	if c.SegmentMs <= 0 {
		c.SegmentMs = DefaultSegmentMs
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.FS == nil {
		c.FS = OSFS{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
