// Package group is the group coordinator: membership of the classic
// consumer-group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup)
// and of the consumer group protocol of KIP-848 (ConsumerGroupHeartbeat,
// ConsumerGroupDescribe; consumer_*.go, assignor.go, reconcile.go),
// committed offsets (OffsetCommit, OffsetFetch, OffsetDelete) and group
// administration (DescribeGroups, ListGroups, DeleteGroups).
//
// # A pure state machine
//
// A Shard holds the groups of one __consumer_offsets partition. It never
// reads a clock and does no I/O: every call takes the time as an argument
// (Unix milliseconds) and returns a Ready with the effects for a driver to
// carry out — responses to send, records to append to the partition, and
// when to call Tick next. The driver (in the broker) reports back when an
// append is durable with AppendDone. Tests drive a Shard directly with an
// explicit clock, no sockets and no sleeps.
//
// Requests are kmsg requests; each carries a token the driver chose, and
// every request gets exactly one response with its token, at once or later:
// a JoinGroup waits for the rebalance to complete, a follower's SyncGroup
// for the leader's assignment, an OffsetCommit for its records to be
// durable.
//
// # Durability
//
// State lives in the partition as ordinary keyed records in Kafka's own
// __consumer_offsets format (records.go), so the topic compacts to the
// latest state per key and a restart rebuilds the shard by Replay. An
// offset commit is answered, and becomes visible to OffsetFetch, only once
// its record is durable. A group's membership is written when the leader's
// assignment is stored (the SyncGroup answers wait for it), when a static
// member is replaced, and when the group becomes empty; a restart brings
// members back as they were last stored, so a broker restart does not by
// itself force a rebalance.
//
// # Deviations from Kafka, on purpose
//
// Members that have not rejoined when a rebalance times out are removed,
// static or not. Offsets expire only for empty groups (as Kafka does for
// groups with no subscriptions), measured from the later of the commit
// and the moment the group became empty, so an offset reset on a long-idle
// group does not vanish at the next check. Transactional offsets are not
// served yet; the require_stable hook is in place for them.
package group
