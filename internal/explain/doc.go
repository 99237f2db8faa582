// Package explain says what delivery guarantee a Kafka configuration
// gives, end to end: the rules behind `weir explain`.
//
// A guarantee is decided by three layers: the producer (acks, retries,
// enable.idempotence, transactional.id), the topic and its brokers
// (replication.factor, min.insync.replicas,
// unclean.leader.election.enable) and the consumer (enable.auto.commit,
// when offsets are committed relative to processing, an idempotent
// handler with a dedup store, isolation.level). Each layer can lose
// records, duplicate them, both or neither; the end-to-end guarantee is
// the union of what the layers do, so the weakest layer decides it.
//
// Every way a layer loses or duplicates records is one Rule in Rules,
// the single table the classification, the suggested changes and the
// tests all read. A rule says in plain words what failure it describes,
// which `weir lab` scenario injects that failure, the smallest change
// that removes it, what that change costs where BENCHMARKS.md measured
// it, and the KIP or Kafka documentation it follows.
//
// Property names are Kafka's, as the Java client spells them; librdkafka
// and franz-go spellings are accepted as aliases (client.go), and each
// client's own defaults fill in what a file leaves out.
package explain
