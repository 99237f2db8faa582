// Package dedup makes a Kafka consumer idempotent: it skips records whose
// idempotency key was already processed, however often an event is
// delivered, and with BoltStore.ProcessTx or PGStore.ProcessTx applies
// each event's effect exactly once into the store's own database.
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
// next delivery tries again. Three stores:
//
//   - BoltStore: an embedded bbolt file, for a consumer that runs as one
//     process.
//   - PGStore: PostgreSQL tables, shared by any number of consumer
//     processes; the handler's own writes, the key and the consumer's
//     offsets can commit in one transaction.
//   - RedisStore: Redis keys claimed with SET NX, expired by Redis after a
//     TTL.
//
// With Process, the handler's effect and the key's record are two
// separate steps, so a crash between them means the next delivery runs
// the handler again: at-least-once handler execution, with duplicates
// suppressed across every redelivery that comes after the key was
// recorded. Handlers whose effects are naturally idempotent, or that can
// tolerate that window, use Process (or Wrap), with any store.
//
// For exactly-once effects the effect has to commit with the key.
// BoltStore.ProcessTx (and WrapTx) hands the handler the bbolt write
// transaction that records the key, and PGStore.ProcessTx the PostgreSQL
// transaction that does; the handler writes its own effect through that
// transaction, and effect and key commit together or neither does. A
// crash at any point leaves either the effect and the key, or neither,
// and the redelivery then skips or applies accordingly: every event's
// effect lands in that database exactly once. Effects anywhere else (an
// e-mail, a call to another service, a write to another database) are
// outside the transaction and stay at-least-once.
//
// Concurrent calls with one key: BoltStore and PGStore make the second
// call wait for the first and then skip (or run, if the first handler
// failed). PGStore inserts the key before running the handler, in the
// same transaction, so a call in another process blocks on the
// uncommitted row and sees the outcome once the first transaction ends.
// RedisStore does not wait: a call that finds the key claimed returns
// ErrInProgress, and the consumer retries the record later.
//
// A store's keys say "this consumer applied this event"; they carry no
// consumer group. Two groups (two services) that each apply the same
// events need a store each, a table (PGOptions.Table), a key prefix
// (RedisOptions.Prefix) or a file of their own: sharing one, the second
// group skips every event the first recorded.
//
// # RedisStore: claims and leases
//
// Setting the key with SET NX and then running the handler would lose
// the event if the process died inside the handler: the key would say
// done, and the effect never happened. RedisStore instead claims the key
// ("processing", with a short lease), runs the handler, and then sets the
// key to "done" with the TTL; if the handler fails it deletes its claim.
// The claim is renewed while the handler runs, even after the caller's
// context ended (the handler takes none and runs to its end); a handler
// that panics releases its claim. If the process dies, its
// claim blocks the key until the lease runs out (calls meanwhile get
// ErrInProgress, never a silent skip), and the next delivery after that
// runs the handler again. A lease is time-based: a process that stalls
// (a stop-the-world pause, a suspended VM) or cannot reach Redis for
// longer than the lease loses its claim while its handler still runs,
// and another process may then run the handler for the same key at the
// same time. Choose a lease well above such stalls. RedisStore therefore gives at-least-once
// handler execution with duplicates suppressed, like BoltStore.Process.
// Keys are only as durable as the Redis server keeps them: one lost to a
// restart without persistence, a failover or eviction is processed again.
//
// # Offsets in the database
//
// PGStore.ProcessRecordTx goes one step further for a consumer whose
// effects all live in PostgreSQL: in the transaction that records the key
// and holds the handler's writes, it also stores the consumer group's
// next offset for the record's partition. PGStore.AdjustOffsets, passed
// to kgo.AdjustFetchOffsetsFn, makes the consumer start every assigned
// partition at the offset stored in the database rather than the one
// committed to Kafka:
//
//	store, err := dedup.NewPGStore(ctx, pool, dedup.PGOptions{TTL: 7 * 24 * time.Hour})
//	cl, err := kgo.NewClient(
//		kgo.SeedBrokers(brokers...),
//		kgo.ConsumerGroup("inventory"),
//		kgo.ConsumeTopics("orders"),
//		kgo.FetchIsolationLevel(kgo.ReadCommitted()), // never apply records of aborted transactions
//		kgo.DisableAutoCommit(),
//		kgo.AdjustFetchOffsetsFn(store.AdjustOffsets("inventory")),
//	)
//	for {
//		fs := cl.PollFetches(ctx)
//		for _, r := range fs.Records() {
//			_, err := store.ProcessRecordTx(ctx, "inventory", dedup.KeyFromHeader("order-id"), r,
//				func(tx pgx.Tx, r *kgo.Record) error { /* write the effect through tx */ })
//			...
//		}
//		cl.CommitRecords(ctx, fs.Records()...)
//	}
//
// Process each partition's records in offset order, one at a time: the
// stored offset jumps to the latest record applied (it never moves
// back), so applying a later record before an earlier one and then
// crashing skips the earlier one. A record whose KeyFunc fails (ErrNoKey)
// stores nothing, its offset included: the consumer decides (skip it,
// park it elsewhere, stop), and the next record applied moves the offset
// past it.
//
// The database is then the authority on the group's position: a consumer
// that crashed after a database commit but before its Kafka commit
// resumes after the last record applied, and is not even handed the
// records it applied. The Kafka commit still matters, for lag monitoring
// and for tools that read the group's offsets, and for partitions that
// have no offset in the database yet; commit only records already
// processed (never auto-commit records that were polled but not applied).
//
// Without ProcessRecordTx and AdjustOffsets, the consumer's offsets are
// committed to Kafka after processing; a crash before that commit only
// causes redeliveries, which the store skips.
//
// # Replay and TTL
//
// A key is remembered until it expires. Each store's TTL says how long a
// key is kept: BoltStore.Purge(now) and PGStore.Purge(ctx, now) delete
// keys recorded before now-TTL (PGStore stamps keys and takes now from
// the database's clock, so consumers and purgers on hosts whose clocks
// disagree agree on a key's age), and PurgeEvery runs a purge on a schedule
// (BoltPurger adapts a BoltStore to it); Redis expires RedisStore's keys
// by itself, so it needs no purge. MarkProcessed of a key already
// recorded restarts its TTL; a duplicate that Process or ProcessTx skips
// does not. A redelivery or duplicate that arrives after its key expired is
// processed again, as new. Choose a TTL longer than the longest window in
// which a duplicate can still arrive: for redeliveries, the time a
// consumer can fall behind its last commit; for a deliberate replay (a
// consumer group reset to an earlier offset), the age of the oldest
// record replayed. Replaying a topic with the store intact skips
// everything already applied; to apply it all again, start from an empty
// store.
//
// The offsets PGStore keeps never expire and only move forward. With
// AdjustOffsets wired in, resetting the group's offsets in Kafka, back or
// forward, changes nothing for a partition with a stored offset, since
// the stored offset wins on the next assignment. To replay, delete the
// group's rows from the offsets table (and, to apply the records again,
// their keys) while no consumer of the group runs; to skip ahead, update
// them (UPDATE weir_dedup_offsets SET next_offset = ... WHERE
// consumer_group = ... AND topic = ... AND partition = ...). A topic deleted and created again restarts its offsets at zero
// and needs the same.
package dedup
