package outbox

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults and limits of RelayConfig.
const (
	DefaultProgressTopic = "weir.outbox.progress"
	DefaultRelayID       = "default"
	DefaultBatchSize     = 500
	// MaxBatchSize keeps a batch's progress record (which lists its
	// event ids) well under the brokers' default 1 MB message limit.
	MaxBatchSize        = 10_000
	DefaultPollInterval = 500 * time.Millisecond
	// DefaultHeartbeatInterval is how often an idle change-data-capture
	// relay records and confirms the server's position by default.
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultTxnTimeout        = time.Minute
	// MinTxnTimeout is the shortest TxnTimeout: a produce is given half
	// the transaction timeout, and Kafka clients allow no less than a
	// second for it.
	MinTxnTimeout = 2 * time.Second
	// TransactionalIDPrefix followed by the relay id is the relay's Kafka
	// transactional id.
	TransactionalIDPrefix = "weir-outbox-"
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	// RelayID names the relay. It must be stable across restarts: the
	// transactional id, the rows the relay claims and its progress
	// records all carry it, and a relay started with the id of one that
	// died finishes what that one left. Two live relays must not share
	// an id (the later fences the earlier), even on different databases
	// or outbox tables: they share the transactional id, fence each
	// other, and after a few rounds one stops with ErrFenced. A
	// change-data-capture relay id is the only one on its table: a
	// second refuses to start. Default DefaultRelayID.
	RelayID string
	// Brokers are the seed brokers; required.
	Brokers []string
	// BatchSize is the most events claimed and published per Kafka
	// transaction; default DefaultBatchSize, at most MaxBatchSize.
	BatchSize int
	// PollInterval is how long the relay waits when the outbox is empty;
	// default DefaultPollInterval.
	PollInterval time.Duration
	// HeartbeatInterval is, for a change-data-capture relay, how often
	// it records in the progress topic the position up to which the
	// server has streamed everything while the outbox is idle, and
	// then confirms that position to its slot; default
	// DefaultHeartbeatInterval. Without it the slot would keep, and the
	// server could not recycle, all WAL that other tables write until
	// the next outbox event, and a server that caps what a slot may
	// keep (max_slot_wal_keep_size) would invalidate the slot. The
	// polling relay does not use it.
	HeartbeatInterval time.Duration
	// ProgressTopic is the compacted topic in which relays record the
	// batches they published; created (one partition, compacted) if
	// missing. Default DefaultProgressTopic.
	ProgressTopic string
	// Table is the outbox table; default DefaultTable.
	Table string
	// TxnTimeout is the Kafka transaction timeout, at least MinTxnTimeout;
	// default DefaultTxnTimeout. It must not exceed the brokers'
	// transaction.max.timeout.ms (15 minutes by default). A batch whose
	// transaction outlives it is aborted by the coordinator and published
	// again.
	TxnTimeout time.Duration
	// Partitioner picks the partition of each event from its key; default
	// kgo.StickyKeyPartitioner(nil), which hashes keys as the Java
	// client does (murmur2). It is not used for the progress topic.
	Partitioner kgo.Partitioner
	// Logger receives the relay's logs; discarded when nil.
	Logger *slog.Logger
	// ClientOpts are added to the Kafka clients' options: connection
	// settings (TLS, SASL, client id) and producer tuning. They cannot
	// replace what exactly-once rests on (transactional id, transaction
	// timeout, acks, partitioner, the progress reader's isolation level
	// and partition), which the relay sets after them; use the fields
	// of RelayConfig for those. Options that no later option undoes
	// (kgo.DisableIdempotentWrite) make the client refuse to start.
	ClientOpts []kgo.Opt
}

// withDefaults validates cfg and fills in defaults.
func (cfg RelayConfig) withDefaults() (RelayConfig, error) {
	if cfg.RelayID == "" {
		cfg.RelayID = DefaultRelayID
	}
	if strings.TrimSpace(cfg.RelayID) != cfg.RelayID || strings.ContainsAny(cfg.RelayID, "\x00\n\r\t") {
		return cfg, fmt.Errorf("outbox: invalid relay id %q: no surrounding spaces or control characters", cfg.RelayID)
	}
	if len(cfg.Brokers) == 0 {
		return cfg, fmt.Errorf("outbox: at least one broker is required")
	}
	switch {
	case cfg.BatchSize == 0:
		cfg.BatchSize = DefaultBatchSize
	case cfg.BatchSize < 0 || cfg.BatchSize > MaxBatchSize:
		return cfg, fmt.Errorf("outbox: batch size %d out of range 1..%d", cfg.BatchSize, MaxBatchSize)
	}
	switch {
	case cfg.PollInterval == 0:
		cfg.PollInterval = DefaultPollInterval
	case cfg.PollInterval < 0:
		return cfg, fmt.Errorf("outbox: negative poll interval %v", cfg.PollInterval)
	}
	switch {
	case cfg.HeartbeatInterval == 0:
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	case cfg.HeartbeatInterval < 0:
		return cfg, fmt.Errorf("outbox: negative heartbeat interval %v", cfg.HeartbeatInterval)
	}
	switch {
	case cfg.TxnTimeout == 0:
		cfg.TxnTimeout = DefaultTxnTimeout
	case cfg.TxnTimeout < MinTxnTimeout:
		return cfg, fmt.Errorf("outbox: transaction timeout %v is under %v", cfg.TxnTimeout, MinTxnTimeout)
	}
	if cfg.ProgressTopic == "" {
		cfg.ProgressTopic = DefaultProgressTopic
	}
	if strings.HasPrefix(cfg.ProgressTopic, "__") {
		return cfg, fmt.Errorf("outbox: progress topic %q: names starting with __ are reserved for internal topics", cfg.ProgressTopic)
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if _, err := tableNames(cfg.Table); err != nil {
		return cfg, err
	}
	if cfg.Partitioner == nil {
		cfg.Partitioner = kgo.StickyKeyPartitioner(nil)
	}
	return cfg, nil
}
