// Package config holds Weir's settings under Kafka's own config names, with
// Kafka's defaults, and loads them from a properties file, WEIR_*
// environment variables and explicit overrides, in that order of precedence
// (later wins).
//
// Topic-level configs (retention.ms, cleanup.policy, …) take their default
// from the broker-level config they shadow (log.retention.ms, …), as in Kafka.
package config

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Type is the type of a config value as Kafka's DescribeConfigs reports it.
type Type int8

// Config types, numbered as in DescribeConfigs v3+.
const (
	Boolean  Type = 1
	String   Type = 2
	Int      Type = 3
	Short    Type = 4
	Long     Type = 5
	Double   Type = 6
	List     Type = 7
	Class    Type = 8
	Password Type = 9
)

// Def defines one config key.
type Def struct {
	Name    string
	Type    Type
	Default string
	Doc     string
	// Topic is the topic-level name this broker config is the default for,
	// or "" when it has none.
	Topic string
	// Valid, when set, checks a value beyond its type.
	Valid func(string) error
}

// Broker-level definitions. Only what Weir implements is listed: a config
// that is accepted is a config that works.
var brokerDefs = []Def{
	{Name: "node.id", Type: Int, Default: "1", Doc: "The id of this node."},
	{Name: "listeners", Type: String, Default: "PLAINTEXT://127.0.0.1:9092", Doc: "The listeners as NAME://host:port,...; a bare host:port is named PLAINTEXT (KIP-103)."},
	{Name: "advertised.listeners", Type: String, Default: "", Doc: "The address clients are told per listener name, NAME://host:port,...; a listener left out advertises its own address."},
	{Name: "listener.security.protocol.map", Type: String, Default: defaultProtocolMap, Doc: "The security protocol of each listener name, NAME:PROTOCOL,... (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).", Valid: func(v string) error { _, err := parseProtocolMap(v); return err }},
	{Name: "inter.broker.listener.name", Type: String, Default: "", Doc: "The listener the nodes of a cluster reach each other on; the one named PLAINTEXT, else the first, when empty."},
	{Name: "ssl.keystore.type", Type: String, Default: "PEM", Doc: "The keystore's format; only PEM.", Valid: oneOf("PEM")},
	{Name: "ssl.keystore.location", Type: String, Default: "", Doc: "A PEM file holding the private key and the certificate chain TLS listeners present; reloaded when it changes."},
	{Name: "ssl.truststore.type", Type: String, Default: "PEM", Doc: "The truststore's format; only PEM.", Valid: oneOf("PEM")},
	{Name: "ssl.truststore.location", Type: String, Default: "", Doc: "A PEM file of CA certificates that client certificates (and, between nodes, server certificates) must chain to; the system's roots when empty."},
	{Name: "ssl.client.auth", Type: String, Default: "none", Doc: "Whether TLS listeners ask clients for a certificate: none, requested or required (mutual TLS).", Valid: oneOf("none", "requested", "required")},
	{Name: "ssl.principal.mapping.rules", Type: String, Default: "DEFAULT", Doc: "How a client certificate's subject becomes a principal name: RULE:pattern/replacement/[LU],...,DEFAULT.", Valid: func(v string) error { _, err := ParsePrincipalRules(v); return err }},
	{Name: "admin.listeners", Type: String, Default: "", Doc: "host:port of the admin listener (Prometheus /metrics, /healthz, /readyz, /debug/pprof/); weir serve's --admin-listen, 127.0.0.1:9644 by default."},
	{Name: "metrics.partition.enable", Type: Boolean, Default: "true", Doc: "Weir's own: whether /metrics has a series per led partition (offsets, producers); off for clusters of many partitions."},
	{Name: "quota.window.num", Type: Int, Default: "11", Doc: "Samples a client's byte rate is measured over, for its quotas.", Valid: atLeast(2)},
	{Name: "quota.window.size.seconds", Type: Int, Default: "1", Doc: "Length of each quota sample.", Valid: atLeast(1)},
	{Name: "authorizer.class.name", Type: String, Default: "", Doc: "Turns ACL enforcement on with Kafka's org.apache.kafka.metadata.authorizer.StandardAuthorizer (ACLs in the metadata log); empty: every client may do everything.", Valid: checkAuthorizer},
	{Name: "super.users", Type: String, Default: "", Doc: "Principals allowed everything, separated by ';' (User:admin;User:broker)."},
	{Name: "allow.everyone.if.no.acl.found", Type: Boolean, Default: "false", Doc: "Whether a resource no ACL names is open to every principal."},
	{Name: "sasl.enabled.mechanisms", Type: List, Default: "SCRAM-SHA-256,SCRAM-SHA-512", Doc: "The SASL mechanisms SASL listeners offer: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN (Kafka's default, GSSAPI, is not served).", Valid: oneOfList("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")},
	{Name: "sasl.plain.allow.plaintext", Type: Boolean, Default: "false", Doc: "Weir's own: whether PLAIN, which sends the password itself, may be offered on a SASL_PLAINTEXT listener; without it PLAIN is offered on SASL_SSL listeners only."},
	{Name: "sasl.mechanism.inter.broker.protocol", Type: String, Default: "SCRAM-SHA-512", Doc: "The SASL mechanism nodes authenticate to each other with when the inter-broker listener is SASL (Kafka's default, GSSAPI, is not served).", Valid: oneOf("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")},
	{Name: "sasl.jaas.config", Type: Password, Default: "", Doc: "The node's own credentials on a SASL inter-broker listener, as a JAAS entry: org.apache.kafka.common.security.scram.ScramLoginModule required username=\"NAME\" password=\"SECRET\";"},
	{Name: "sasl.server.max.receive.size", Type: Int, Default: "524288", Doc: "The largest frame a client may send before it has authenticated; a larger one closes the connection.", Valid: atLeast(1024)},
	{Name: "connections.max.reauth.ms", Type: Long, Default: "0", Doc: "The lifetime of a SASL session: a client must re-authenticate within it or its connection closes at its next request (KIP-368); 0 for none.", Valid: atLeast(0)},
	{Name: "connection.failed.authentication.delay.ms", Type: Int, Default: "100", Doc: "How long the answer to a failed authentication waits before the connection closes, slowing down password guessing.", Valid: atLeast(0)},
	{Name: "ssl.endpoint.identification.algorithm", Type: String, Default: "https", Doc: "Between nodes, whether a peer's certificate must name the address dialled: https or empty.", Valid: oneOf("https", "")},
	{Name: "log.dirs", Type: String, Default: "./weir-data", Doc: "Data directory."},
	{Name: "auto.create.topics.enable", Type: Boolean, Default: "true", Doc: "Create topics on first use by Metadata or Produce."},
	{Name: "num.partitions", Type: Int, Default: "1", Doc: "Default partition count of new topics.", Valid: atLeast(1)},
	{Name: "default.replication.factor", Type: Short, Default: "1", Doc: "Default replication factor (a single node supports 1)."},
	{Name: "message.max.bytes", Type: Int, Default: "1048588", Doc: "Largest record batch accepted.", Topic: "max.message.bytes", Valid: atLeast(0)},
	{Name: "log.segment.bytes", Type: Int, Default: "1073741824", Doc: "Segment size before a roll.", Topic: "segment.bytes", Valid: atLeast(14)},
	{Name: "log.roll.ms", Type: Long, Default: "604800000", Doc: "Segment age before a roll.", Topic: "segment.ms", Valid: atLeast(1)},
	{Name: "log.retention.ms", Type: Long, Default: "604800000", Doc: "Age after which segments are deleted; -1 keeps forever.", Topic: "retention.ms", Valid: atLeast(-1)},
	{Name: "log.retention.bytes", Type: Long, Default: "-1", Doc: "Partition size above which old segments are deleted; -1 means no limit.", Topic: "retention.bytes", Valid: atLeast(-1)},
	{Name: "log.index.interval.bytes", Type: Int, Default: "4096", Doc: "Bytes between offset index entries.", Topic: "index.interval.bytes", Valid: atLeast(0)},
	{Name: "log.retention.check.interval.ms", Type: Long, Default: "300000", Doc: "How often retention runs.", Valid: atLeast(1)},
	{Name: "log.cleanup.policy", Type: List, Default: "delete", Doc: "delete or compact.", Topic: "cleanup.policy", Valid: oneOfList("delete", "compact")},
	{Name: "log.message.timestamp.type", Type: String, Default: "CreateTime", Doc: "CreateTime or LogAppendTime.", Topic: "message.timestamp.type", Valid: oneOf("CreateTime", "LogAppendTime")},
	{Name: "min.insync.replicas", Type: Int, Default: "1", Doc: "Replicas that must hold an acks=all write.", Topic: "min.insync.replicas", Valid: atLeast(1)},
	{Name: "unclean.leader.election.enable", Type: Boolean, Default: "false", Doc: "Elect a replica outside the ISR when no ISR member is alive, at the cost of the writes it lacks.", Topic: "unclean.leader.election.enable"},
	{Name: "auto.leader.rebalance.enable", Type: Boolean, Default: "true", Doc: "The active controller moves leadership back to preferred replicas (the first of each assignment) when a broker's leadership is out of balance."},
	{Name: "leader.imbalance.check.interval.seconds", Type: Long, Default: "300", Doc: "How often the active controller checks leadership balance.", Valid: atLeast(1)},
	{Name: "leader.imbalance.per.broker.percentage", Type: Int, Default: "10", Doc: "Share of a broker's preferred partitions, in per cent, that may be led elsewhere before leadership is moved back.", Valid: atLeast(0)},
	{Name: "replica.lag.time.max.ms", Type: Long, Default: "30000", Doc: "A follower that has not caught up with the leader's log end for this long leaves the ISR.", Valid: atLeast(1)},
	{Name: "replica.fetch.wait.max.ms", Type: Int, Default: "500", Doc: "Longest a follower's fetch waits at the leader's log end.", Valid: atLeast(0)},
	{Name: "replica.fetch.max.bytes", Type: Int, Default: "1048576", Doc: "Bytes a follower asks for per partition in one fetch.", Valid: atLeast(1024)},
	{Name: "offsets.topic.replication.factor", Type: Short, Default: "3", Doc: "Replication factor of __consumer_offsets (at most the brokers there are when it is created).", Valid: atLeast(1)},
	{Name: "transaction.state.log.replication.factor", Type: Short, Default: "3", Doc: "Replication factor of __transaction_state (at most the brokers there are when it is created).", Valid: atLeast(1)},
	{Name: "socket.request.max.bytes", Type: Int, Default: "104857600", Doc: "Largest request frame accepted.", Valid: atLeast(1)},
	{Name: "max.connections", Type: Int, Default: "10000", Doc: "Most client connections at once.", Valid: atLeast(1)},
	{Name: "queued.max.requests", Type: Int, Default: "500", Doc: "Most requests in flight on one connection.", Valid: atLeast(1)},
	{Name: "num.recovery.threads.per.data.dir", Type: Int, Default: "2", Doc: "Partitions opened (their logs recovered) at once when the node starts (KIP-1030's default).", Valid: atLeast(1)},
	{Name: "fetch.max.waiting", Type: Int, Default: "10000", Doc: "Most fetches waiting for data at once.", Valid: atLeast(1)},
	{Name: "fetch.max.bytes", Type: Int, Default: "57671680", Doc: "Most bytes one fetch response carries.", Valid: atLeast(1024)},
	{Name: "delete.topic.enable", Type: Boolean, Default: "true", Doc: "Allow topic deletion."},
	{Name: "producer.id.expiration.ms", Type: Int, Default: "86400000", Doc: "Idle time after which a partition forgets a producer id; its next batch is then accepted at any sequence.", Valid: atLeast(1)},
	{Name: "transaction.max.timeout.ms", Type: Int, Default: "900000", Doc: "Longest transaction timeout a producer may ask for.", Valid: atLeast(1)},
	{Name: "transactional.id.expiration.ms", Type: Int, Default: "604800000", Doc: "Idle time after which a transactional id is forgotten.", Valid: atLeast(1)},
	{Name: "transaction.state.log.min.isr", Type: Int, Default: "2", Doc: "min.insync.replicas of __transaction_state (at most its replication factor when it is created).", Valid: atLeast(1)},
	{Name: "transaction.state.log.num.partitions", Type: Int, Default: "50", Doc: "Partitions of __transaction_state.", Valid: atLeast(1)},
	{Name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", Type: Int, Default: "10000", Doc: "How often timed-out transactions are aborted.", Valid: atLeast(1)},
	{Name: "producer.id.expiration.check.interval.ms", Type: Int, Default: "600000", Doc: "How often idle producer ids are expired.", Valid: atLeast(1)},
	// Consumer groups and their offsets (__consumer_offsets).
	{Name: "offsets.topic.num.partitions", Type: Int, Default: "50", Doc: "Partitions of __consumer_offsets, fixed when it is created.", Valid: atLeast(1)},
	{Name: "offsets.topic.segment.bytes", Type: Int, Default: "104857600", Doc: "Segment size of __consumer_offsets, kept small so compaction can clean it.", Valid: atLeast(14)},
	{Name: "offsets.retention.minutes", Type: Int, Default: "10080", Doc: "How long the committed offsets of an empty group are kept.", Valid: atLeast(1)},
	{Name: "offsets.retention.check.interval.ms", Type: Long, Default: "600000", Doc: "How often expired offsets are removed.", Valid: atLeast(1)},
	{Name: "offset.metadata.max.bytes", Type: Int, Default: "4096", Doc: "Largest metadata string an offset commit may carry.", Valid: atLeast(0)},
	{Name: "group.initial.rebalance.delay.ms", Type: Int, Default: "3000", Doc: "How long the first rebalance of an empty group waits for more members.", Valid: atLeast(0)},
	{Name: "group.min.session.timeout.ms", Type: Int, Default: "6000", Doc: "Smallest session timeout a member may ask for.", Valid: atLeast(1)},
	{Name: "group.max.session.timeout.ms", Type: Int, Default: "1800000", Doc: "Largest session timeout a member may ask for.", Valid: atLeast(1)},
	{Name: "group.max.size", Type: Int, Default: "2147483647", Doc: "Most members one group may have.", Valid: atLeast(1)},
	// Consumer groups of the consumer protocol (KIP-848).
	{Name: "group.consumer.session.timeout.ms", Type: Int, Default: "45000", Doc: "How long a consumer-protocol member may go without a heartbeat before it is removed.", Valid: atLeast(1)},
	{Name: "group.consumer.heartbeat.interval.ms", Type: Int, Default: "5000", Doc: "How often consumer-protocol members are told to heartbeat.", Valid: atLeast(1)},
	{Name: "group.consumer.assignors", Type: List, Default: "org.apache.kafka.coordinator.group.assignor.UniformAssignor,org.apache.kafka.coordinator.group.assignor.RangeAssignor", Doc: "The server-side assignors, the first the default: uniform and range, by Kafka's class name or short name.", Valid: checkAssignors},
	// Log compaction (cleanup.policy=compact).
	{Name: "log.cleaner.enable", Type: Boolean, Default: "true", Doc: "Run the cleaner that compacts topics with cleanup.policy=compact."},
	{Name: "log.cleaner.backoff.ms", Type: Long, Default: "15000", Doc: "How often the cleaner looks for compacted topics to clean.", Valid: atLeast(1)},
	{Name: "log.cleaner.delete.retention.ms", Type: Long, Default: "86400000", Doc: "How long a tombstone in a compacted topic is kept after its timestamp.", Topic: "delete.retention.ms", Valid: atLeast(0)},
	// The metadata quorum (quorum.go). Empty voters: one node with a local
	// metadata log.
	{Name: "controller.quorum.voters", Type: List, Default: "", Doc: "The metadata quorum's voters as id@host:port,...; empty for a single node.", Valid: checkVoters},
	{Name: "controller.listener.names", Type: String, Default: "CONTROLLER", Doc: "The name of the metadata quorum's listener, whose protocol listener.security.protocol.map gives (PLAINTEXT when it names none; SSL for mutual TLS)."},
	{Name: "controller.listeners", Type: String, Default: "", Doc: "host:port this node's controller listens on for the quorum (Kafka names it through controller.listener.names and listeners).", Valid: checkHostPort},
	{Name: "metadata.log.max.record.bytes.between.snapshots", Type: Long, Default: "20971520", Doc: "Record bytes a cluster node applies from the metadata log before it snapshots its image and trims the log.", Valid: atLeast(1)},
	{Name: "controller.quorum.election.timeout.ms", Type: Int, Default: "1000", Doc: "How long a voter waits without hearing from a leader before it starts an election.", Valid: atLeast(200)},
	// Broker lifecycle (KIP-631): heartbeats to the active controller.
	{Name: "broker.heartbeat.interval.ms", Type: Int, Default: "2000", Doc: "How often a broker of a cluster sends the active controller a heartbeat.", Valid: atLeast(10)},
	{Name: "broker.session.timeout.ms", Type: Int, Default: "9000", Doc: "How long the active controller waits without a broker's heartbeat before it fences the broker and moves its leaderships away.", Valid: atLeast(100)},
}

// Topic-level definitions that shadow no broker config.
var topicOnlyDefs = []Def{}

var byName = func() map[string]*Def {
	m := make(map[string]*Def)
	for i := range brokerDefs {
		m[brokerDefs[i].Name] = &brokerDefs[i]
	}
	return m
}()

var byTopicName = func() map[string]*Def {
	m := make(map[string]*Def)
	for i := range brokerDefs {
		if t := brokerDefs[i].Topic; t != "" {
			m[t] = &brokerDefs[i]
		}
	}
	for i := range topicOnlyDefs {
		m[topicOnlyDefs[i].Name] = &topicOnlyDefs[i]
	}
	return m
}()

// Lookup returns the broker-level definition of name.
func Lookup(name string) (*Def, bool) { d, ok := byName[name]; return d, ok }

// LookupTopic returns the definition behind a topic-level config name; its
// Name is the broker config that supplies the default.
func LookupTopic(name string) (*Def, bool) { d, ok := byTopicName[name]; return d, ok }

// TopicNames lists the topic-level config names in order.
func TopicNames() []string {
	names := make([]string, 0, len(byTopicName))
	for n := range byTopicName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BrokerNames lists the broker-level config names in order.
func BrokerNames() []string {
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check validates value against def's type and rule.
func (d *Def) Check(value string) error {
	switch d.Type {
	case Boolean:
		if _, err := strconv.ParseBool(value); err != nil {
			return fmt.Errorf("%s: %q is not a boolean", d.Name, value)
		}
	case Int, Short, Long:
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return fmt.Errorf("%s: %q is not an integer", d.Name, value)
		}
	}
	if d.Valid != nil {
		if err := d.Valid(value); err != nil {
			return fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	return nil
}

func atLeast(min int64) func(string) error {
	return func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		if n < min {
			return fmt.Errorf("%d is below the minimum %d", n, min)
		}
		return nil
	}
}

func oneOf(allowed ...string) func(string) error {
	return func(s string) error {
		for _, a := range allowed {
			if s == a {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(allowed, ", "))
	}
}

func oneOfList(allowed ...string) func(string) error {
	one := oneOf(allowed...)
	return func(s string) error {
		for _, part := range strings.Split(s, ",") {
			if err := one(strings.TrimSpace(part)); err != nil {
				return err
			}
		}
		return nil
	}
}

// Broker is the set of broker-level configs in force: every known key has a
// value, its default unless set.
type Broker struct {
	values map[string]string
	set    map[string]bool // explicitly set (not defaulted)
}

// NewBroker returns the defaults.
func NewBroker() *Broker {
	b := &Broker{values: make(map[string]string), set: make(map[string]bool)}
	for _, d := range brokerDefs {
		b.values[d.Name] = d.Default
	}
	return b
}

// Set validates and sets one config.
func (b *Broker) Set(name, value string) error {
	d, ok := byName[name]
	if !ok {
		return fmt.Errorf("unknown config %q", name)
	}
	if err := d.Check(value); err != nil {
		return err
	}
	b.values[name] = value
	b.set[name] = true
	return nil
}

// IsSet reports whether name was set explicitly.
func (b *Broker) IsSet(name string) bool { return b.set[name] }

// Get returns the value of name ("" for an unknown name).
func (b *Broker) Get(name string) string { return b.values[name] }

// Int returns an integer config; validated values always parse.
func (b *Broker) Int(name string) int64 {
	n, _ := strconv.ParseInt(b.values[name], 10, 64)
	return n
}

// Bool returns a boolean config.
func (b *Broker) Bool(name string) bool {
	v, _ := strconv.ParseBool(b.values[name])
	return v
}

// LoadProperties sets every key=value line of a Java properties file
// (# and ! comments, blank lines, key=value or key:value).
func (b *Broker) LoadProperties(r io.Reader) error {
	return eachProperty(r, b.Set)
}

// ReadProperties reads a Java properties file (key=value or key: value
// lines, # and ! comments) into a map; a key given twice keeps the last.
func ReadProperties(r io.Reader) (map[string]string, error) {
	props := make(map[string]string)
	err := eachProperty(r, func(k, v string) error {
		props[k] = v
		return nil
	})
	return props, err
}

func eachProperty(r io.Reader, set func(k, v string) error) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' || s[0] == '!' {
			continue
		}
		i := strings.IndexAny(s, "=:")
		if i < 0 {
			return fmt.Errorf("line %d: expected key=value", line)
		}
		if err := set(strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return sc.Err()
}

// LoadFile loads a properties file by path.
func (b *Broker) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := b.LoadProperties(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadEnv sets each config from WEIR_<NAME>, the name upper-cased with dots
// turned into underscores (WEIR_LOG_RETENTION_MS for log.retention.ms).
func (b *Broker) LoadEnv(environ []string) error {
	envName := make(map[string]string, len(byName))
	for name := range byName {
		envName["WEIR_"+strings.ToUpper(strings.ReplaceAll(name, ".", "_"))] = name
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if name, ok := envName[k]; ok {
			if err := b.Set(name, v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	return nil
}

// Topic resolves a topic's config: its own overrides over the broker's
// values. The returned map holds every topic-level key.
func (b *Broker) Topic(overrides map[string]string) map[string]string {
	out := make(map[string]string, len(byTopicName))
	for tname, d := range byTopicName {
		if v, ok := overrides[tname]; ok {
			out[tname] = v
		} else {
			out[tname] = b.values[d.Name]
		}
	}
	return out
}

// CheckTopic validates one topic-level config.
func CheckTopic(name, value string) error {
	d, ok := byTopicName[name]
	if !ok {
		return fmt.Errorf("unknown topic config %q", name)
	}
	if err := d.Check(value); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// standardAuthorizer is Kafka's authorizer for KRaft clusters, the one
// authorizer.class.name Weir serves.
const standardAuthorizer = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

func checkAuthorizer(v string) error {
	switch {
	case v == "" || v == standardAuthorizer:
		return nil
	case strings.HasSuffix(v, "AclAuthorizer"):
		return fmt.Errorf("%s keeps ACLs in ZooKeeper; use %s, which keeps them in the metadata log", v, standardAuthorizer)
	}
	return fmt.Errorf("%s is not served; use %s", v, standardAuthorizer)
}

// AssignorName maps a group.consumer.assignors entry, a short name or
// Kafka's class name (org.apache.kafka.coordinator.group.assignor.UniformAssignor),
// to the short name clients send: uniform, range.
func AssignorName(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		s = s[i+1:]
	}
	return strings.ToLower(strings.TrimSuffix(s, "Assignor"))
}

func checkAssignors(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("at least one assignor is needed")
	}
	for _, part := range strings.Split(v, ",") {
		if n := AssignorName(part); n != "uniform" && n != "range" {
			return fmt.Errorf("%q is not an assignor served (uniform, range)", strings.TrimSpace(part))
		}
	}
	return nil
}
