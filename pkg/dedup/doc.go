// Package dedup makes a Kafka consumer idempotent: it skips records whose
// idempotency key was already processed, however often an event is
// delivered, and with BoltStore.ProcessTx applies each event's effect
// exactly once.
//
// # Why
//
// A consumer that processes a batch and then commits its offsets
// (at-least-once) sees a record again whenever it stops between the two
// steps: a crash, a kill, a rebalance that revokes the partition before the
// commit lands. Producers add duplicates of their own: an upstream service
// that retries a publish, or an outbox relay that re-sends after a crash,
// writes the same event twice at two different offsets. Kafka's
// exactly-once ends at Kafka's edge; once the handler writes to a database
// or calls another system, the consumer has to recognise what it already
// did.
//
// # Idempotency keys
//
// An idempotency key names one event, not one delivery of it. A KeyFunc
// takes it from the record:
//
//   - KeyFromHeader: a business key the producer set, such as an order id.
//     This is the one to prefer: it catches redeliveries and upstream
//     duplicates alike, because both copies carry the same id.
//   - KeyFromRecordKey: the record key, when every record key names a
//     single event (not when the key is an entity that receives many
//     updates: the second update would be skipped).
//   - KeyFromOffset: topic, partition and offset. It needs nothing from the
//     producer and catches redeliveries, but not upstream duplicates, which
//     sit at different offsets.
//
// # Stores and what they guarantee
//
// A Store remembers processed keys. Store.Process runs a handler only if
// its key is not yet recorded, and records the key only after the handler
// succeeded: a failed handler leaves the key unrecorded, so the record's
// next delivery tries again.
//
// BoltStore keeps the keys in a bbolt file. With Process, the handler's
// effect and the key's record are two separate steps, so a crash between
// them means the next delivery runs the handler again: at-least-once
// handler execution, with duplicates suppressed across every redelivery
// that comes after the key was recorded. Handlers whose effects are
// naturally idempotent, or that can tolerate that window, use Process (or
// Wrap).
//
// For exactly-once effects the effect has to commit with the key.
// BoltStore.ProcessTx (and WrapTx) hands the handler the bbolt write
// transaction that records the key; the handler writes its own effect
// into its own buckets in that transaction, and both commit together or
// neither does. A crash at any point leaves either the effect and the key,
// or neither, and the redelivery then skips or applies accordingly: every
// event's effect lands in the embedded store exactly once.
//
// The consumer's offsets are still committed to Kafka after processing; a
// crash before that commit only causes redeliveries, which the store
// skips.
//
// # Replay and TTL
//
// A key is remembered until Purge removes it. Options.TTL says how long a
// key is kept: BoltStore.Purge(now) deletes keys recorded before now-TTL.
// A redelivery or duplicate that arrives after its key was purged is
// processed again, as new. Choose a TTL longer than the longest window in
// which a duplicate can still arrive: for redeliveries, the time a
// consumer can fall behind its last commit; for a deliberate replay (a
// consumer group reset to an earlier offset), the age of the oldest record
// replayed. Replaying a topic with the store intact skips everything
// already applied; to apply it all again, start from an empty store.
package dedup
