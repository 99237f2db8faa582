package explain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Client is the client family whose property spellings and defaults a
// configuration uses.
type Client int

// Client families.
const (
	// Java is Apache Kafka's Java client, 3.0 or later.
	Java Client = iota
	// Librdkafka is librdkafka and the clients built on it (confluent-kafka
	// for Python, Go, .NET and JavaScript; kcat).
	Librdkafka
	// FranzGo is github.com/twmb/franz-go (kgo), the client Weir itself uses.
	FranzGo
)

// String is the --client value naming c.
func (c Client) String() string {
	switch c {
	case Librdkafka:
		return "librdkafka"
	case FranzGo:
		return "franz-go"
	}
	return "java"
}

// ParseClient reads a --client value.
func ParseClient(s string) (Client, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "java", "":
		return Java, nil
	case "librdkafka", "confluent", "kcat":
		return Librdkafka, nil
	case "franz-go", "franz", "kgo":
		return FranzGo, nil
	}
	return 0, fmt.Errorf("unknown client %q: want java, librdkafka or franz-go", s)
}

// Canonical property names: Kafka's, as the Java client spells them, plus
// the two that say what the application does, which no client property
// can tell.
const (
	keyAcks            = "acks"
	keyIdempotence     = "enable.idempotence"
	keyRetries         = "retries"
	keyDeliveryTimeout = "delivery.timeout.ms"
	keyMaxInFlight     = "max.in.flight.requests.per.connection"
	keyTransactionalID = "transactional.id"
	// The three that decide whether a delivery timeout leaves time for a
	// retry (KIP-91).
	keyLinger         = "linger.ms"
	keyRequestTimeout = "request.timeout.ms"
	keyRetryBackoff   = "retry.backoff.ms"

	keyReplicationFactor = "replication.factor"
	keyMinISR            = "min.insync.replicas"
	keyUnclean           = "unclean.leader.election.enable"

	keyAutoCommit      = "enable.auto.commit"
	keyAutoOffsetStore = "enable.auto.offset.store" // librdkafka only
	keyIsolation       = "isolation.level"
	// keyCommit says when the application commits (or, with librdkafka's
	// enable.auto.offset.store=false, stores) offsets: before-processing,
	// after-processing or transaction (sendOffsetsToTransaction, KIP-447).
	keyCommit = "weir.commit"
	// keyDedup says the handler skips records it already processed, keyed
	// by an event id (pkg/dedup).
	keyDedup = "weir.dedup"
	// keyAutoCommitMarks is franz-go's AutoCommitMarks: auto-commit commits
	// only the records the application marked.
	keyAutoCommitMarks = "AutoCommitMarks"
	// keyGreedyAutoCommit is franz-go's GreedyAutoCommit: auto-commit
	// commits everything polled, not only what earlier polls returned.
	keyGreedyAutoCommit = "GreedyAutoCommit"
	// keyAllowCancel is franz-go's AllowIdempotentProduceCancellation:
	// records already sent may be failed, and the idempotent producer no
	// longer keeps a record the application produces again from being
	// stored twice.
	keyAllowCancel = "AllowIdempotentProduceCancellation"
)

// alias is one spelling of a canonical property; invert means the
// spelling's boolean is the negation (franz-go's Disable... options).
type alias struct {
	key    string
	invert bool
	// duration: the value is a Go duration (franz-go options) to be read
	// as milliseconds.
	duration bool
}

// aliases maps each client's spelling to the canonical name. Keys are
// matched exactly, as the clients do.
//
// librdkafka: CONFIGURATION.md names request.required.acks (acks is its
// alias), message.send.max.retries (retries), message.timeout.ms
// (delivery.timeout.ms) and max.in.flight (max.in.flight.requests.per.connection).
// librdkafka's queue.buffering.max.ms is its name for linger.ms.
//
// franz-go has no properties, only kgo options; their names are accepted
// as keys: RequiredAcks, DisableIdempotentWrite, TransactionalID,
// RecordRetries, RecordDeliveryTimeout, MaxProduceRequestsInflightPerBroker,
// ProducerLinger, ProduceRequestTimeout, AllowIdempotentProduceCancellation,
// DisableAutoCommit, AutoCommitMarks, GreedyAutoCommit, FetchIsolationLevel.
var aliases = map[Client]map[string]alias{
	Librdkafka: {
		"request.required.acks":    {key: keyAcks},
		"message.send.max.retries": {key: keyRetries},
		"message.timeout.ms":       {key: keyDeliveryTimeout},
		"max.in.flight":            {key: keyMaxInFlight},
		"queue.buffering.max.ms":   {key: keyLinger},
		keyAutoOffsetStore:         {key: keyAutoOffsetStore},
	},
	FranzGo: {
		"RequiredAcks":                        {key: keyAcks},
		"DisableIdempotentWrite":              {key: keyIdempotence, invert: true},
		"TransactionalID":                     {key: keyTransactionalID},
		"RecordRetries":                       {key: keyRetries},
		"RecordDeliveryTimeout":               {key: keyDeliveryTimeout, duration: true},
		"MaxProduceRequestsInflightPerBroker": {key: keyMaxInFlight},
		"ProducerLinger":                      {key: keyLinger, duration: true},
		"ProduceRequestTimeout":               {key: keyRequestTimeout, duration: true},
		keyAllowCancel:                        {key: keyAllowCancel},
		"DisableAutoCommit":                   {key: keyAutoCommit, invert: true},
		"AutoCommitMarks":                     {key: keyAutoCommitMarks},
		keyGreedyAutoCommit:                   {key: keyGreedyAutoCommit},
		"FetchIsolationLevel":                 {key: keyIsolation},
	},
}

// canonicalKeys are the names every client accepts (Java's spelling).
var canonicalKeys = map[string]Layer{
	keyAcks: Producer, keyIdempotence: Producer, keyRetries: Producer,
	keyDeliveryTimeout: Producer, keyMaxInFlight: Producer, keyTransactionalID: Producer,
	keyLinger: Producer, keyRequestTimeout: Producer, keyRetryBackoff: Producer,
	keyReplicationFactor: Topic, keyMinISR: Topic, keyUnclean: Topic,
	keyAutoCommit: Consumer, keyIsolation: Consumer, keyCommit: Consumer, keyDedup: Consumer,
}

// clientOnlyKeys are canonical names one client alone has, by layer.
var clientOnlyKeys = map[string]Layer{
	keyAutoOffsetStore: Consumer, keyAutoCommitMarks: Consumer, keyGreedyAutoCommit: Consumer,
	keyAllowCancel: Producer,
}

// layerOf is the layer a canonical name belongs to.
func layerOf(key string) (Layer, bool) {
	if l, ok := canonicalKeys[key]; ok {
		return l, true
	}
	l, ok := clientOnlyKeys[key]
	return l, ok
}

// canonical resolves a spelling for client c.
func canonical(c Client, key string) (alias, bool) {
	if a, ok := aliases[c][key]; ok {
		return a, true
	}
	if _, ok := canonicalKeys[key]; ok {
		return alias{key: key}, true
	}
	return alias{}, false
}

// defaults are each client's values for what a configuration leaves out,
// in canonical spelling.
//
// Java (Apache Kafka 3.0+): acks=all and enable.idempotence=true by
// default since 3.0 (KIP-679; the idempotence default took effect in
// 3.0.1/3.1.1/3.2.0, KAFKA-13598, per Kafka's 3.0 upgrade notes);
// retries=2147483647 and delivery.timeout.ms=120000 (KIP-91);
// max.in.flight.requests.per.connection=5; linger.ms=0 (5 from Kafka
// 4.0, KIP-1030), request.timeout.ms=30000, retry.backoff.ms=100;
// enable.auto.commit=true; isolation.level=read_uncommitted (KIP-98).
//
// librdkafka (CONFIGURATION.md): request.required.acks=-1 (all),
// enable.idempotence=false, message.send.max.retries=2147483647,
// message.timeout.ms=300000, max.in.flight=1000000, linger.ms=5,
// request.timeout.ms=30000, retry.backoff.ms=100,
// enable.auto.commit=true, enable.auto.offset.store=true,
// isolation.level=read_committed.
//
// franz-go (kgo v1.22 config.go defaults): RequiredAcks(AllISRAcks()),
// idempotent writes on unless DisableIdempotentWrite, RecordRetries
// unbounded, no RecordDeliveryTimeout, MaxProduceRequestsInflightPerBroker
// 1 (the only value kgo accepts when idempotent), ProducerLinger 10ms,
// a produce request read limit of ProduceRequestTimeout 10s plus
// RequestTimeoutOverhead 10s, a first retry backoff of 250ms, auto-commit
// every 5s of what earlier polls returned (GreedyAutoCommit: of what was
// polled), FetchIsolationLevel(ReadUncommitted()).
var defaults = map[Client]map[string]string{
	Java: {
		keyAcks: "all", keyIdempotence: "true", keyRetries: "2147483647",
		keyDeliveryTimeout: "120000", keyMaxInFlight: "5",
		keyLinger: "0", keyRequestTimeout: "30000", keyRetryBackoff: "100",
		keyAutoCommit: "true", keyIsolation: "read_uncommitted",
	},
	Librdkafka: {
		keyAcks: "all", keyIdempotence: "false", keyRetries: "2147483647",
		keyDeliveryTimeout: "300000", keyMaxInFlight: "1000000",
		keyLinger: "5", keyRequestTimeout: "30000", keyRetryBackoff: "100",
		keyAutoCommit: "true", keyAutoOffsetStore: "true", keyIsolation: "read_committed",
	},
	FranzGo: {
		keyAcks: "all", keyIdempotence: "true", keyRetries: "9223372036854775807",
		keyDeliveryTimeout: "0", keyMaxInFlight: "1",
		keyLinger: "10", keyRequestTimeout: "20000", keyRetryBackoff: "250",
		keyAutoCommit: "true", keyGreedyAutoCommit: "false", keyAllowCancel: "false",
		keyIsolation: "read_uncommitted",
	},
}

// topicDefaults are Kafka's broker defaults, used for what neither the
// topic nor --assume gives: default.replication.factor=1,
// min.insync.replicas=1, unclean.leader.election.enable=false (Kafka
// broker configuration documentation).
var topicDefaults = map[string]string{
	keyReplicationFactor: "1", keyMinISR: "1", keyUnclean: "false",
}

// franzGoSpelling is the kgo option that sets each canonical producer and
// consumer property, and its value for a canonical value: franz-go users
// change options, not properties.
var franzGoSpelling = map[string]struct {
	option string
	value  func(string) string
}{
	keyAcks: {"RequiredAcks", func(v string) string {
		return map[string]string{"all": "AllISRAcks", "-1": "AllISRAcks", "1": "LeaderAck", "0": "NoAck"}[v]
	}},
	keyIdempotence:      {"DisableIdempotentWrite", negate},
	keyRetries:          {"RecordRetries", same},
	keyDeliveryTimeout:  {"RecordDeliveryTimeout", msDuration},
	keyMaxInFlight:      {"MaxProduceRequestsInflightPerBroker", same},
	keyLinger:           {"ProducerLinger", msDuration},
	keyRequestTimeout:   {"ProduceRequestTimeout", msDuration},
	keyTransactionalID:  {"TransactionalID", same},
	keyAllowCancel:      {keyAllowCancel, same},
	keyAutoCommit:       {"DisableAutoCommit", negate},
	keyAutoCommitMarks:  {keyAutoCommitMarks, same},
	keyGreedyAutoCommit: {keyGreedyAutoCommit, same},
	keyIsolation: {"FetchIsolationLevel", func(v string) string {
		if v == "read_committed" {
			return "ReadCommitted"
		}
		return "ReadUncommitted"
	}},
}

func same(v string) string { return v }

func negate(v string) string {
	if v == "true" {
		return "false"
	}
	return "true"
}

// msDuration writes milliseconds as a Go duration, as kgo options take.
func msDuration(v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return v
	}
	return (time.Duration(n) * time.Millisecond).String()
}

// spell writes a canonical setting as client c spells it. Topic settings
// and weir.* keep their names: they are no client's.
func spell(c Client, s Setting) Setting {
	if c != FranzGo || s.Layer == Topic {
		return s
	}
	if f, ok := franzGoSpelling[s.Key]; ok {
		s.Key, s.Value = f.option, f.value(s.Value)
	}
	return s
}

// KgoOption says how a franz-go user makes change s: the kgo option to
// add, or to leave out where the setting is kgo's default.
func KgoOption(s Setting) string {
	switch s.Key {
	case "RequiredAcks", "FetchIsolationLevel":
		return fmt.Sprintf("kgo.%s(kgo.%s())", s.Key, s.Value)
	case "RecordRetries", "MaxProduceRequestsInflightPerBroker":
		if s.Key == "MaxProduceRequestsInflightPerBroker" && s.Value == "1" {
			return "leave out kgo.MaxProduceRequestsInflightPerBroker (1 is its default)"
		}
		return fmt.Sprintf("kgo.%s(%s)", s.Key, s.Value)
	case "RecordDeliveryTimeout", "ProducerLinger", "ProduceRequestTimeout", "TransactionalID":
		if s.Key == "RecordDeliveryTimeout" && s.Value == "0s" {
			return "leave out kgo.RecordDeliveryTimeout (no timeout is its default)"
		}
		return fmt.Sprintf("kgo.%s(%q)", s.Key, s.Value)
	}
	if _, ok := aliases[FranzGo][s.Key]; !ok {
		return ""
	}
	if s.Value == "true" {
		return fmt.Sprintf("kgo.%s()", s.Key)
	}
	return fmt.Sprintf("leave out kgo.%s()", s.Key)
}
