package bench

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of a load run (LoadOptions), the flags of `weir bench`.
const (
	DefaultLoadTopic          = "weir-bench-load"
	DefaultLoadRate           = 10_000
	DefaultLoadDuration       = 30 * time.Second
	DefaultLoadWarmup         = 5 * time.Second
	DefaultLoadCommitInterval = 100 * time.Millisecond
	// loadDrainTimeout bounds how long consumers may take, after the
	// producers stop, to read what was acknowledged.
	loadDrainTimeout = 30 * time.Second
	// loadJoinTimeout bounds the wait for the consumer group to be
	// assigned every partition before producing starts.
	loadJoinTimeout = 60 * time.Second
	// loadTick is how often a paced producer checks its schedule. Each
	// tick it sends every record that fell due since the last one, so a
	// producer that fell behind (blocked on a full buffer, or in a
	// commit) catches up instead of losing the records.
	loadTick = time.Millisecond
)

// LoadOptions describes a load run in the manner of the OpenMessaging
// Benchmark: Producers clients send at a fixed total Rate, Consumers
// clients in one group read everything back, and each record carries its
// send time so the consumers measure end-to-end latency. Figures cover
// Duration after Warmup; records sent during the warmup are excluded.
type LoadOptions struct {
	Topic string `json:"topic"`
	// Partitions is the partition count used when the topic has to be
	// created; an existing topic keeps its own.
	Partitions int32 `json:"partitions"`
	Producers  int   `json:"producers"`
	Consumers  int   `json:"consumers"`
	// Rate is the total target rate in records per second, spread evenly
	// across the producers; 0 sends as fast as the clients take records.
	Rate       float64       `json:"rate"`
	Duration   time.Duration `json:"duration_ns"`
	Warmup     time.Duration `json:"warmup_ns"`
	RecordSize int           `json:"record_size"`
	Acks       Acks          `json:"-"`
	AcksName   string        `json:"acks"`
	Idempotent bool          `json:"idempotent"`
	// Transactional gives every producer a transactional id of its own,
	// committing every CommitInterval; consumers then read committed.
	Transactional  bool          `json:"transactional"`
	CommitInterval time.Duration `json:"commit_interval_ns,omitempty"`
	// Linger is the producers' linger (kgo.ProducerLinger). The default,
	// 0, sends as soon as a request can go, so latency is the broker's
	// rather than time a record waits in the client for company.
	Linger time.Duration `json:"linger_ns"`
	// BrokerPID is the local broker process whose CPU time is read from
	// /proc; 0 finds it by the first seed's port when that address is on
	// this machine, -1 turns the measurement off.
	BrokerPID int `json:"broker_pid,omitempty"`
	// ClientOpts are appended to every client's options (security).
	ClientOpts []kgo.Opt `json:"-"`
}

// DefaultLoadOptions returns the options `weir bench` starts from.
func DefaultLoadOptions() LoadOptions {
	return LoadOptions{
		Topic:          DefaultLoadTopic,
		Partitions:     DefaultPartitions,
		Producers:      1,
		Consumers:      1,
		Rate:           DefaultLoadRate,
		Duration:       DefaultLoadDuration,
		Warmup:         DefaultLoadWarmup,
		RecordSize:     DefaultRecordSize,
		Acks:           AcksAll,
		Idempotent:     true,
		CommitInterval: DefaultLoadCommitInterval,
	}
}

// Validate reports the first option a run cannot use, as one line naming
// the flag.
func (o LoadOptions) Validate() error {
	switch {
	case o.Topic == "":
		return errors.New("invalid --topic: want a name")
	case o.Producers < 1:
		return fmt.Errorf("invalid --producers %d: want at least 1", o.Producers)
	case o.Consumers < 1:
		return fmt.Errorf("invalid --consumers %d: want at least 1 (end-to-end latency needs a consumer)", o.Consumers)
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return fmt.Errorf("invalid --rate %v: want records per second, 0 for as fast as possible", o.Rate)
	case o.Duration <= 0:
		return fmt.Errorf("invalid --duration %v: want a positive duration", o.Duration)
	case o.Warmup < 0:
		return fmt.Errorf("invalid --warmup %v: want 0 or more", o.Warmup)
	case o.RecordSize < loadHeaderSize:
		return fmt.Errorf("invalid --record-size %d: want at least %d bytes (the send time, run, producer and sequence each record carries)", o.RecordSize, loadHeaderSize)
	case o.RecordSize > 1<<20:
		return fmt.Errorf("invalid --record-size %d: want at most 1048576", o.RecordSize)
	case o.Partitions < 1:
		return fmt.Errorf("invalid --partitions %d: want at least 1", o.Partitions)
	case o.Linger < 0:
		return fmt.Errorf("invalid --linger %v: want 0 or more", o.Linger)
	case o.Idempotent && o.Acks != AcksAll:
		return fmt.Errorf("--idempotent requires --acks all (got --acks %s)", o.Acks)
	case o.Transactional && (o.Acks != AcksAll || !o.Idempotent):
		return errors.New("--transactional requires --acks all and an idempotent producer")
	case o.Transactional && o.CommitInterval <= 0:
		return fmt.Errorf("invalid --commit-interval %v: want a positive duration", o.CommitInterval)
	}
	return nil
}

// String describes the workload in one line.
func (o LoadOptions) String() string {
	rate := "as fast as possible"
	if o.Rate > 0 {
		rate = fmt.Sprintf("%.0f records/s", o.Rate)
	}
	mode := fmt.Sprintf("acks=%s", o.Acks)
	if o.Idempotent {
		mode += ", idempotent"
	}
	if o.Transactional {
		mode += fmt.Sprintf(", transactional (commit every %v)", o.CommitInterval)
	}
	return fmt.Sprintf("%d producers, %d consumers, %s, %d-byte records, topic %s (%d partitions), %s, %v after %v warmup",
		o.Producers, o.Consumers, rate, o.RecordSize, o.Topic, o.Partitions, mode, o.Duration, o.Warmup)
}
