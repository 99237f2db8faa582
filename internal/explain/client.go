package explain

import (
	"fmt"
	"strings"
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
// franz-go has no properties, only kgo options; their names are accepted
// as keys: RequiredAcks, DisableIdempotentWrite, TransactionalID,
// RecordRetries, RecordDeliveryTimeout, MaxProduceRequestsInflightPerBroker,
// DisableAutoCommit, AutoCommitMarks, FetchIsolationLevel.
var aliases = map[Client]map[string]alias{
	Librdkafka: {
		"request.required.acks":    {key: keyAcks},
		"message.send.max.retries": {key: keyRetries},
		"message.timeout.ms":       {key: keyDeliveryTimeout},
		"max.in.flight":            {key: keyMaxInFlight},
		keyAutoOffsetStore:         {key: keyAutoOffsetStore},
	},
	FranzGo: {
		"RequiredAcks":                        {key: keyAcks},
		"DisableIdempotentWrite":              {key: keyIdempotence, invert: true},
		"TransactionalID":                     {key: keyTransactionalID},
		"RecordRetries":                       {key: keyRetries},
		"RecordDeliveryTimeout":               {key: keyDeliveryTimeout, duration: true},
		"MaxProduceRequestsInflightPerBroker": {key: keyMaxInFlight},
		"DisableAutoCommit":                   {key: keyAutoCommit, invert: true},
		"AutoCommitMarks":                     {key: keyAutoCommitMarks},
		"FetchIsolationLevel":                 {key: keyIsolation},
	},
}

// canonicalKeys are the names every client accepts (Java's spelling).
var canonicalKeys = map[string]Layer{
	keyAcks: Producer, keyIdempotence: Producer, keyRetries: Producer,
	keyDeliveryTimeout: Producer, keyMaxInFlight: Producer, keyTransactionalID: Producer,
	keyReplicationFactor: Topic, keyMinISR: Topic, keyUnclean: Topic,
	keyAutoCommit: Consumer, keyIsolation: Consumer, keyCommit: Consumer, keyDedup: Consumer,
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
// max.in.flight.requests.per.connection=5; enable.auto.commit=true;
// isolation.level=read_uncommitted (KIP-98).
//
// librdkafka (CONFIGURATION.md): request.required.acks=-1 (all),
// enable.idempotence=false, message.send.max.retries=2147483647,
// message.timeout.ms=300000, max.in.flight=1000000,
// enable.auto.commit=true, enable.auto.offset.store=true,
// isolation.level=read_committed.
//
// franz-go (kgo v1.22 config.go defaults): RequiredAcks(AllISRAcks()),
// idempotent writes on unless DisableIdempotentWrite, RecordRetries
// unbounded, no RecordDeliveryTimeout, five requests in flight when
// idempotent (one when not), auto-commit every 5s of what was polled,
// FetchIsolationLevel(ReadUncommitted()).
var defaults = map[Client]map[string]string{
	Java: {
		keyAcks: "all", keyIdempotence: "true", keyRetries: "2147483647",
		keyDeliveryTimeout: "120000", keyMaxInFlight: "5",
		keyAutoCommit: "true", keyIsolation: "read_uncommitted",
	},
	Librdkafka: {
		keyAcks: "all", keyIdempotence: "false", keyRetries: "2147483647",
		keyDeliveryTimeout: "300000", keyMaxInFlight: "1000000",
		keyAutoCommit: "true", keyAutoOffsetStore: "true", keyIsolation: "read_committed",
	},
	FranzGo: {
		keyAcks: "all", keyIdempotence: "true", keyRetries: "9223372036854775807",
		keyDeliveryTimeout: "0", keyMaxInFlight: "5",
		keyAutoCommit: "true", keyIsolation: "read_uncommitted",
	},
}

// topicDefaults are Kafka's broker defaults, used for what neither the
// topic nor --assume gives: default.replication.factor=1,
// min.insync.replicas=1, unclean.leader.election.enable=false (Kafka
// broker configuration documentation).
var topicDefaults = map[string]string{
	keyReplicationFactor: "1", keyMinISR: "1", keyUnclean: "false",
}
