package explain

import "fmt"

// Setting is one property change: Layer says where it goes (the
// producer's or consumer's properties, or the topic's configuration).
type Setting struct {
	Layer Layer
	Key   string
	Value string
}

// String is the setting as key=value.
func (s Setting) String() string { return s.Key + "=" + s.Value }

// Rule is one way a layer loses or duplicates records.
type Rule struct {
	// ID names the rule in tests and output.
	ID    string
	Layer Layer
	Harm  Harm
	// Applies reports whether the configuration is exposed to the failure.
	Applies func(c *Config) bool
	// Cause names the setting at fault, in a few words.
	Cause string
	// Failure says, in plain words, what happens and to which records.
	Failure string
	// Lab names the `weir lab` scenarios ("side / config / fault") that
	// inject this failure for c; empty when the lab has none.
	Lab func(c *Config) []string
	// Fix is the smallest change that removes the failure.
	Fix func(c *Config) []Setting
	// Cost is the fix's measured throughput cost, from BENCHMARKS.md,
	// or "" where none was measured.
	Cost string
	// Source is the KIP or Kafka documentation the rule follows.
	Source string
}

// Measured costs, from BENCHMARKS.md.
const (
	costIdempotence = "none measurable: idempotent / plain produce throughput = 1.03 (BENCHMARKS.md, \"Weir vs franz-go's in-memory fake cluster\")"
	costReplication = "throughput × 0.63: replication factor 3 with min.insync.replicas 2 against 1, acks=all, three nodes on one machine (BENCHMARKS.md, \"What replication costs\")"
)

// labProducerMode is the lab's name for the producer configuration of c
// (internal/lab producerModes).
func labProducerMode(c *Config) string {
	switch {
	case c.Acks == 0:
		return "acks=0"
	case c.Acks == 1:
		return "acks=1"
	case c.Transactional:
		return "transactional"
	case c.Idempotent:
		return "acks=all idempotent"
	}
	return "acks=all"
}

// labClusterMode is the lab's name for the broker-layer row of c
// (internal/lab clusterMode.name), or "" when the lab has no such row:
// it runs three nodes with min.insync.replicas 1 or 2 and acks 1 or all.
func labClusterMode(c *Config) string {
	if c.ReplicationFactor != 3 || c.Acks == 0 || c.MinInsyncReplicas > 2 {
		return ""
	}
	acks, isr := "1", c.MinInsyncReplicas
	if c.Acks == -1 {
		acks = "all"
	} else {
		// The lab prunes acks=1 with min.insync=2: min.insync.replicas
		// gates acks=all writes only, so the acks=1 row is the same.
		isr = 1
	}
	u := "off"
	if c.UncleanElection {
		u = "on"
	}
	return fmt.Sprintf("acks=%s min.insync=%d unclean=%s", acks, isr, u)
}

func producerScenario(c *Config, fault string) string {
	return "producer / " + labProducerMode(c) + " / " + fault
}

func clusterScenarios(c *Config, faults ...string) []string {
	m := labClusterMode(c)
	if m == "" {
		return nil
	}
	var out []string
	for _, f := range faults {
		out = append(out, "cluster / "+m+" / "+f)
	}
	return out
}

func set(l Layer, kv ...string) []Setting {
	var out []Setting
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Setting{Layer: l, Key: kv[i], Value: kv[i+1]})
	}
	return out
}

// autoCommitLoses reports whether the client's auto-commit commits
// records before they are processed: librdkafka (with
// enable.auto.offset.store=true) and franz-go's GreedyAutoCommit commit
// what was handed to the application. Java's commits, inside poll(), the
// positions of what the previous poll() returned, and franz-go's default
// what earlier polls returned: both processed, if the application
// processes in the poll loop.
func autoCommitLoses(c *Config) bool { return c.Commit == CommitAuto && c.AutoCommitsUnprocessed }

// Lab rows and faults the rules name (internal/lab scenarios.go and
// cluster_scenarios.go); TestEveryRuleNamesItsSourceAndARunnableLabScenario
// checks them against the lab's plan.
const (
	faultLeaderKilled   = "leader killed"
	faultFollowersLag   = "followers lag then leader killed"
	labAutoCommit       = "consumer / auto-commit / consumer killed mid-batch"
	labGreedyAutoCommit = "consumer / greedy auto-commit / consumer killed mid-batch"
	labWorkerKilledTxn  = "end to end / consume-transform-produce / worker killed mid-transaction"
)

// autoCommitLab is the lab row whose worker commits as c's client does,
// or "" where none does (Java's commit inside poll()).
func autoCommitLab(c *Config) string {
	switch {
	case c.AutoCommitsUnprocessed:
		return labGreedyAutoCommit
	case c.Client == FranzGo:
		return labAutoCommit
	}
	return ""
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Rules is every way a configuration loses or duplicates records: the one
// table Explain and the tests read.
var Rules = []Rule{
	{
		ID: "acks-0", Layer: Producer, Harm: Loss,
		Cause:   "acks=0",
		Applies: func(c *Config) bool { return c.Acks == 0 },
		Failure: "acks=0: the producer counts a record as sent once it is on the socket; a broker that dies or a connection that drops before the record is stored loses it, and nobody is told",
		Lab: func(c *Config) []string {
			return []string{producerScenario(c, "connection drops"), producerScenario(c, "broker killed")}
		},
		Fix:    func(*Config) []Setting { return set(Producer, keyAcks, "all") },
		Source: "Kafka producer configuration: acks",
	},
	{
		ID: "acks-1", Layer: Producer, Harm: Loss,
		Cause:   "acks=1",
		Applies: func(c *Config) bool { return c.Acks == 1 },
		Failure: "acks=1: the leader answers once the record is in its own log, before any follower has copied it; if the leader dies then, a replica without the record becomes leader and the acknowledged record is lost",
		Lab: func(c *Config) []string {
			// On the lab's single broker acks=1 waits for what acks=all
			// waits for, the leader's own log, which a killed broker
			// keeps; on its cluster the followers keep up, and the row
			// killing the leader lost nothing at acks=1 (seeds 1-4). The
			// loss shows where followers fell behind and one of them is
			// elected: the lagging-followers row with unclean election.
			if !c.UncleanElection {
				return nil
			}
			return clusterScenarios(c, faultFollowersLag)
		},
		Fix:    func(*Config) []Setting { return set(Producer, keyAcks, "all") },
		Source: "Kafka producer configuration: acks",
	},
	{
		ID: "retries-0", Layer: Producer, Harm: Loss,
		Cause:   "retries=0",
		Applies: func(c *Config) bool { return c.Acks != 0 && c.Retries == 0 },
		Failure: "retries=0: a passing error (a leader moving, a request timing out) fails the record instead of sending it again; unless the application resends it, it is lost",
		Lab:     func(*Config) []string { return nil },
		Fix:     func(*Config) []Setting { return set(Producer, keyRetries, "2147483647") },
		Source:  "Kafka producer configuration: retries; KIP-91",
	},
	{
		ID: "delivery-timeout-no-retry", Layer: Producer, Harm: Loss,
		Cause:   "delivery.timeout.ms too short for one retry",
		Applies: func(c *Config) bool { return c.Acks != 0 && c.Retries > 0 && c.NoRetryInTime() },
		Failure: "delivery.timeout.ms is shorter than one retry takes (request.timeout.ms + retry.backoff.ms + linger.ms): the record's time runs out before it can be sent again, so a passing error fails it as retries=0 would; unless the application resends it, it is lost",
		Lab:     func(*Config) []string { return nil },
		Fix: func(c *Config) []Setting {
			return set(Producer, keyDeliveryTimeout, defaults[c.Client][keyDeliveryTimeout])
		},
		Source: "KIP-91 (delivery.timeout.ms: at least request.timeout.ms + retry.backoff.ms + linger.ms for one retry)",
	},
	{
		ID: "retry-duplicates", Layer: Producer, Harm: Duplicates,
		Cause:   "enable.idempotence=false",
		Applies: func(c *Config) bool { return c.Acks != 0 && c.Retries > 0 && !c.Idempotent },
		Failure: "without idempotence a retry is a new write: when the answer to a stored batch is lost (a timeout, a dropped connection), the producer sends the batch again and the broker stores it twice",
		Lab: func(c *Config) []string {
			return []string{producerScenario(c, "lost acks"), producerScenario(c, "connection drops")}
		},
		Fix: func(c *Config) []Setting {
			var out []Setting
			if c.Acks != -1 {
				out = set(Producer, keyAcks, "all")
			}
			out = append(out, set(Producer, keyIdempotence, "true")...)
			// Each client refuses idempotence with more requests in
			// flight than it can keep in order: five (KIP-98), one for kgo.
			switch {
			case c.Client == FranzGo && c.MaxInFlight != 1:
				out = append(out, set(Producer, keyMaxInFlight, "1")...)
			case c.MaxInFlight > 5:
				out = append(out, set(Producer, keyMaxInFlight, "5")...)
			}
			return out
		},
		Cost:   costIdempotence,
		Source: "KIP-98 (idempotent producer: producer id, epoch and per-partition sequence numbers)",
	},
	{
		ID: "idempotent-cancellation", Layer: Producer, Harm: Duplicates,
		Cause:   "AllowIdempotentProduceCancellation",
		Applies: func(c *Config) bool { return c.Idempotent && c.AllowCancel },
		Failure: "AllowIdempotentProduceCancellation lets a cancelled context, RecordDeliveryTimeout or RecordRetries fail records already sent: the broker may hold them, and a record the application produces again is stored twice, which idempotence no longer prevents",
		Lab:     func(*Config) []string { return nil },
		Fix:     func(*Config) []Setting { return set(Producer, keyAllowCancel, "false") },
		Source:  "franz-go kgo documentation: AllowIdempotentProduceCancellation",
	},
	{
		ID: "single-replica", Layer: Topic, Harm: Loss,
		Cause:   "replication.factor=1",
		Applies: func(c *Config) bool { return c.ReplicationFactor == 1 },
		Failure: "replication.factor=1: each record is on one broker only; if its disk or machine is lost, so is every record on it (and a Kafka broker answers before its data reaches the disk, so a power cut is enough there)",
		Lab:     func(*Config) []string { return nil },
		Fix: func(c *Config) []Setting {
			return set(Topic, keyReplicationFactor, "3", keyMinISR, "2")
		},
		Cost:   costReplication,
		Source: "Kafka documentation, Design: Replication",
	},
	{
		ID: "min-insync-1", Layer: Topic, Harm: Loss,
		Cause: "min.insync.replicas=1",
		Applies: func(c *Config) bool {
			return c.ReplicationFactor > 1 && c.MinInsyncReplicas < 2 && c.Acks == -1
		},
		Failure: "min.insync.replicas=1: once the followers fall behind and leave the ISR, the leader acknowledges acks=all writes alone, and until the followers catch up those writes are on one broker: losing its disk loses them (with Kafka, which answers before the write reaches the disk, so does a power cut), as does electing a follower that lacks them to bring the partition back (unclean election)",
		// The lab kills processes, not disks: with unclean election off
		// the partition waits for the killed leader and its writes, and
		// the lab's row loses nothing.
		Lab: func(*Config) []string { return nil },
		Fix: func(c *Config) []Setting {
			if c.ReplicationFactor < 3 {
				return set(Topic, keyReplicationFactor, "3", keyMinISR, "2")
			}
			return set(Topic, keyMinISR, "2")
		},
		Source: "Kafka topic configuration: min.insync.replicas",
	},
	{
		ID: "unclean-election", Layer: Topic, Harm: Loss,
		Cause:   "unclean.leader.election.enable=true",
		Applies: func(c *Config) bool { return c.ReplicationFactor > 1 && c.UncleanElection },
		Failure: "unclean.leader.election.enable=true: when no in-sync replica is left, a replica that fell behind may become leader, and the acknowledged records it lacks are lost",
		Lab: func(c *Config) []string {
			// The lab's row cuts both followers off: with acks=all and
			// min.insync.replicas=2 the leader then refuses writes, and
			// the follower elected lacks nothing acknowledged. Losing
			// writes at min.insync=2 takes one follower behind and the
			// leader and the other follower lost, which it does not run.
			if c.Acks == -1 && c.MinInsyncReplicas >= 2 {
				return nil
			}
			return clusterScenarios(c, faultFollowersLag)
		},
		Fix:    func(*Config) []Setting { return set(Topic, keyUnclean, "false") },
		Source: "Kafka topic configuration: unclean.leader.election.enable",
	},
	{
		ID: "auto-commit-skips", Layer: Consumer, Harm: Loss,
		Cause:   "enable.auto.commit=true",
		Applies: autoCommitLoses,
		Failure: "enable.auto.commit=true commits, on a timer, the offsets of records handed to the application, processed or not: a consumer that dies after such a commit and before processing those records skips them",
		Lab:     func(*Config) []string { return []string{labGreedyAutoCommit} },
		Fix: func(c *Config) []Setting {
			if c.Client == FranzGo {
				// franz-go's default auto-commit waits a poll.
				return set(Consumer, keyGreedyAutoCommit, "false")
			}
			return set(Consumer, keyAutoCommit, "false", keyCommit, "after-processing")
		},
		Source: "librdkafka CONFIGURATION.md (enable.auto.offset.store); franz-go kgo documentation: GreedyAutoCommit; Kafka consumer configuration: enable.auto.commit",
	},
	{
		ID: "auto-commit-redelivers", Layer: Consumer, Harm: Duplicates,
		Cause:   "enable.auto.commit=true",
		Applies: func(c *Config) bool { return c.Commit == CommitAuto && !c.Dedup },
		Failure: "enable.auto.commit=true commits every few seconds (auto.commit.interval.ms): records processed since the last commit are delivered again to whoever takes the partition after a crash or a rebalance (the Java client's commit in poll() is at-least-once only if every record is processed before the next poll)",
		// The lab's auto-commit workers are franz-go's timer, not the
		// Java client's poll().
		Lab:    func(c *Config) []string { return nonEmpty(autoCommitLab(c)) },
		Fix:    func(*Config) []Setting { return set(Consumer, keyDedup, "true") },
		Source: "Kafka consumer documentation (KafkaConsumer: offsets and consumer position)",
	},
	{
		ID: "commit-before-processing", Layer: Consumer, Harm: Loss,
		Cause:   "offsets committed before processing",
		Applies: func(c *Config) bool { return c.Commit == CommitBefore },
		Failure: "offsets committed before processing: a consumer that dies after the commit and before processing skips those records",
		Lab: func(*Config) []string {
			return []string{"consumer / commit before processing / consumer killed mid-batch"}
		},
		Fix:    func(*Config) []Setting { return set(Consumer, keyCommit, "after-processing") },
		Source: "Kafka consumer documentation (KafkaConsumer: manual offset control)",
	},
	{
		ID: "commit-after-redelivers", Layer: Consumer, Harm: Duplicates,
		Cause:   "offsets committed after processing without a dedup store",
		Applies: func(c *Config) bool { return c.Commit == CommitAfter && !c.Dedup },
		Failure: "offsets committed after processing: a consumer that dies between the two leaves the offsets behind, and the records are processed again",
		Lab:     func(*Config) []string { return []string{"consumer / process then commit / consumer killed mid-batch"} },
		Fix:     func(*Config) []Setting { return set(Consumer, keyDedup, "true") },
		Source:  "Kafka consumer documentation (KafkaConsumer: manual offset control); pkg/dedup",
	},
	{
		ID: "read-uncommitted", Layer: Consumer, Harm: Duplicates,
		Cause: "isolation.level=read_uncommitted",
		Applies: func(c *Config) bool {
			return c.Transactional && !c.ReadCommitted && c.Commit != CommitInTransaction
		},
		Failure: "isolation.level=read_uncommitted reads records of transactions that later abort: they were never written as far as Kafka is concerned, yet they are processed, and again when the producer writes them in its next transaction (a dedup store skips that second copy, not the record of an abandoned transaction)",
		// The row's killed workers leave aborted transactions in the
		// log ("log holds N aborted"): each record of them is one a
		// read_uncommitted consumer receives; the row itself reads
		// read_committed.
		Lab:    func(*Config) []string { return []string{labWorkerKilledTxn} },
		Fix:    func(*Config) []Setting { return set(Consumer, keyIsolation, "read_committed") },
		Source: "KIP-98 (transactions; isolation.level)",
	},
	{
		ID: "txn-offsets-uncommitted-input", Layer: Consumer, Harm: Duplicates,
		Cause:   "isolation.level=read_uncommitted",
		Applies: func(c *Config) bool { return c.Commit == CommitInTransaction && !c.ReadCommitted },
		Failure: "weir.commit=transaction with isolation.level=read_uncommitted: the transform reads input of transactions that abort, and writes its output for them",
		Lab:     func(*Config) []string { return nil },
		Fix:     func(*Config) []Setting { return set(Consumer, keyIsolation, "read_committed") },
		Source:  "KIP-447 (consume-transform-produce with read_committed consumers)",
	},
}
