// Package eos runs consume-transform-produce in Kafka transactions: every
// output record and the input offsets that produced it commit together,
// or none of them does (KIP-98, KIP-447). It works against Weir and any
// Kafka cluster: it uses only the Kafka protocol through franz-go.
//
// The user supplies a Transform from one input record to output records;
// the Processor polls, begins a transaction, produces the outputs, commits
// the input offsets inside the same transaction and ends it. A rebalance
// in the middle aborts the transaction and the records are consumed again
// by whoever owns them next. A processor that is fenced — a newer
// instance with the same transactional id started, or the transaction
// outlived its timeout — stops with the error: run one transactional id
// per worker and restart the worker, which fences its predecessor at
// start.
//
// Consumers of the output must read with isolation level read_committed
// to see only committed transactions.
//
// # State stores
//
// NewStateful adds a key-value store to the processor, the Go counterpart
// of a Kafka Streams state store under processing.guarantee=exactly_once_v2.
// There is one store per input partition number (a task). Input topics
// must have the same partition count, as Kafka Streams requires of
// co-partitioned inputs: Run refuses others at start, and the group
// balancer assigns partition p of every input topic to the same member,
// so a store and its changelog partition have one owner. Every change the Process function makes is also written to the
// compacted changelog topic "<group>-<store>-changelog", partition for
// partition, in the same transaction as the outputs and the input offsets.
// The changelog is the store's truth; the local copy on disk is a cache of
// it, and these rules keep the cache equal to the committed changelog:
//
//   - Writes are buffered in memory during a transaction and applied to the
//     local store only after the transaction commits. An aborted
//     transaction (a Process error, a rebalance, a fenced zombie) drops the
//     buffer, so the local store is never ahead of the committed changelog
//     and an aborted transaction's writes never reach it.
//   - A worker SIGKILLed between producing the changelog and committing
//     leaves an open transaction; its successor with the same transactional
//     id aborts it at start (InitProducerId), and whoever owns the partition
//     next restores from the changelog read_committed, which skips it.
//   - A zombie — a worker that lost its partitions in a rebalance but still
//     runs — is fenced by the group generation its offset commit carries
//     (KIP-447) or by the producer epoch of a restarted instance; its
//     transaction aborts and it never applies the buffer.
//   - A crash after the transaction commits but before the local store is
//     written leaves the local store behind the changelog. The checkpoint
//     file (the next changelog offset the local store has not applied) is
//     written only on a clean close and deleted as soon as the store is
//     opened, so after a crash there is no checkpoint and the store is
//     rebuilt from the start of the changelog.
//   - The checkpoint also records the changelog's topic id (Metadata v10+,
//     KIP-516). A changelog deleted and created again — an application
//     reset — has a new id, and a store that applied the old one is
//     rebuilt from the start of the new one, however long either is. An
//     existing changelog whose cleanup.policy lacks compact is refused at
//     start: retention would delete changes the store depends on.
//   - On every assignment of a partition the store is brought up to the end
//     of its changelog before any input of that partition is processed:
//     read_committed from the checkpoint (or from the last offset this
//     worker applied, or from the start) until the high watermark seen when
//     the restore began. Reading to the high watermark, not the last stable
//     offset, waits out a transaction still open on the changelog (a
//     crashed or fenced owner's), whose outcome decides both the changelog
//     and the committed input offsets (fetched with require_stable). A
//     worker answers queries only for the partitions of its current
//     assignment: the balancer is eager, so a rebalance's JoinGroup drops
//     them all and the assignment that follows is the whole new set.
//   - Cancelling Run's context inside a transaction aborts it (under a
//     context of its own, bounded by the transaction timeout) and Run
//     returns nil: an open transaction would hold back the last stable
//     offset of the output until it timed out.
//
// # Repartitioning
//
// NewRepartitioned aggregates a stream by another key than the one it is
// partitioned by (orders keyed by order id, summed per customer). Its
// Topology runs two processors: one writes every input record, under the
// key Repartition.Key returns, to the internal topic
// RepartitionTopic(group, name) = "<group>-<name>-repartition" in the
// same transaction as its input offsets; the other consumes that topic
// read_committed and runs the Process function with its store and
// changelog. The topic is created at start with the inputs' partition
// count (or Repartition.Partitions), the cluster's default replication
// factor and cleanup.policy=delete; one that exists compacted (which
// would drop a re-keyed record before it is aggregated) or with another
// partition count (which would send a key to another task than its
// state) is refused. Records the aggregating stage has committed are
// deleted (DeleteRecords, KIP-107) every Repartition.PurgeInterval, as
// Kafka Streams purges its repartition topics.
//
// # Standby replicas
//
// With Config.Standby a worker keeps a warm copy of the stores of the
// partitions it does not own, applying their changelogs read_committed as
// they grow; when the group moves one of them here the restore reads only
// what the copy has not applied yet (see standby.go).
//
// Count, Sum, Latest and WindowedCount are Process functions for the
// common aggregates; GetInt64, PutInt64, AddInt64 and CheckedAdd help
// write others. A sum outside the int64 range is ErrOverflow and a key
// the store cannot hold (empty or over 32 KiB) is ErrInvalidKey, never a
// wrapped value or a truncated key: returned from Process, such an error
// aborts the transaction and stops the processor, and the record is read
// again after a restart, so a Process function that should go on past
// bad input skips the record itself (examples/inventory does).
// QueryHandler serves a worker's stores over HTTP (interactive queries of
// the partitions it owns), and Config.Registerer receives restore
// progress, commit latency, aborts and input lag. Only Kafka APIs are
// used: the changelog is created with the cluster's default replication
// factor (-1, KIP-464: Kafka 2.4 and later), so the processor runs the
// same against Apache Kafka.
//
// The local store is bbolt (go.etcd.io/bbolt), one file per task, under a
// directory of the state directory named by the application (the group),
// as Kafka Streams keeps state under its application id. bbolt is
// a single B+tree file with serializable transactions and no background
// compaction or write-ahead log to tune; pebble's strengths (write
// throughput under an LSM, large stores) matter less here because the
// store only receives writes that already committed to Kafka, in one bbolt
// transaction per Kafka transaction. The file is opened without fsync on
// commit: a crash discards it anyway (no checkpoint), and a clean close
// syncs it before writing the checkpoint.
package eos
