// Package outbox implements the transactional outbox for PostgreSQL: an
// application writes an event in the same database transaction as the
// business change it describes, and a relay publishes it to Weir (or any
// Kafka cluster) exactly once: each committed event appears once in the
// topic as seen by a read_committed consumer, whatever crashes in
// between.
//
// # Writing events
//
//	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		if _, err := tx.Exec(ctx, `INSERT INTO orders ...`); err != nil {
//			return err
//		}
//		_, err := outbox.Write(ctx, tx, outbox.Event{Topic: "orders", Key: []byte(customer), Payload: body})
//		return err
//	})
//
// The event exists if and only if the transaction commits. Migrate (or
// MigrateTable) creates the table once:
//
//	weir_outbox
//	  id          bigserial    the event id, also sent as header weir-event-id
//	  topic       text         destination topic; it must exist (the relay does not ask for auto-creation)
//	  key         bytea        record key; picks the partition
//	  payload     bytea        record value
//	  headers     jsonb        record headers, a JSON object whose values are strings
//	  created_at  timestamptz  when it was written
//	  state       text         pending → claimed → sent
//	  relay_id    text         the relay that claimed it
//	  batch       bigint       the batch it was claimed for (kept once sent)
//	  sent_at     timestamptz  when its batch was known committed
//	  event_uuid  uuid         drawn by the database; sent as header weir-event-uuid
//
// plus weir_outbox_relays (one row per relay id: its incarnation, bumped
// at every start, and a random token naming this database's history of
// the relay id) and the sequence weir_outbox_batch_seq; with MigrateTable
// and a table T they are T_relays and T_batch_seq, in T's schema. Sent
// rows stay for audit; delete them when convenient (DELETE FROM weir_outbox
// WHERE state = 'sent' AND sent_at < now() - interval '7 days'). Insert
// rows with Write: a row written by hand whose headers are not an object
// of strings cannot be claimed, and stops the relay (see Limits).
//
// Every published record carries, after the event's own headers, the
// header weir-event-id (EventIDHeader) holding the event id in decimal,
// and weir-event-uuid (EventUUIDHeader) holding the row's event_uuid.
// Deduplicate on the UUID, not the id: ids are a per-table sequence, and
// another table, another database or a restored one issues them again
// to other events. The UUID catches what the relay itself may publish
// twice (a restored database's window, see below); it does not catch an
// application that writes one business event as two rows, for which a
// consumer needs a business key of the application's own (with
// pkg/dedup, KeyFromHeader). Migrate adds the column to tables created
// before it, rewriting them once. No record is published without the
// UUID: a change-data-capture relay that streams a row without it (one
// inserted before Migrate, or after the column was dropped under the
// relay) stops with an error naming the source transaction, to be
// skipped (weir outbox skip --lsn) or published some other way.
//
// # The relay
//
// A relay runs as `weir outbox relay` or through NewRelay and Run. The
// command takes --dsn (or WEIR_OUTBOX_DSN), --brokers (or WEIR_BROKERS),
// --table (default weir_outbox), --relay-id (default "default"; keep it
// across restarts), --batch-size (events per Kafka transaction, default
// 500, at most 10000), --poll-interval (wait when the outbox is empty,
// default 500ms), --progress-topic (default weir.outbox.progress),
// --transaction-timeout (default a minute; RelayConfig.TxnTimeout) and
// --command-config and --command-property (the client's security
// settings in Kafka's names, as every client command takes). It logs at info level a line at start and
// one per published batch, and warns of each failure. Relay ids must be
// unique per outbox table and database (see RelayConfig.RelayID).
// It loops:
//
//  1. claim: in its own committed transaction, mark up to BatchSize of the
//     oldest pending rows claimed with its relay id and a fresh batch
//     number (SELECT … FOR UPDATE SKIP LOCKED, so several relays take
//     disjoint rows without waiting for each other);
//  2. publish: in one Kafka transaction (transactional id
//     weir-outbox-<relay id>, acks=all) produce the events and a progress
//     record naming the batch and its event ids to the compacted progress
//     topic (weir.outbox.progress), and commit;
//  3. mark the batch's rows sent (in the same database transaction as the
//     next claim, which saves a round of statements per batch).
//
// A crash after 1 leaves rows claimed that were never published; after
// 2's produce, an open transaction that will be aborted; after 2's commit,
// rows that were published but are not marked. An at-least-once relay
// would publish the last kind again. This one, when it starts, first
// finds out which of its claimed rows were committed, and it does so from
// Kafka itself, since the Kafka commit is the fact that matters:
//
//   - (a) start a new incarnation in the database: increment the relay id's
//     incarnation in weir_outbox_relays;
//   - (b) in a Kafka transaction, commit a fence record to the progress
//     topic. Its InitProducerId fences every earlier producer with the
//     transactional id and settles the transaction it left open (KIP-98);
//   - (c) read the progress topic read_committed from its start up to the
//     fence record, keeping the last batch record of this relay id;
//   - (d) in one database transaction: rows claimed by this relay id in that
//     batch become sent; all its other claimed rows go back to pending.
//
// Only then does it claim anything.
//
// # Why each event is published exactly once
//
// Progress records and fence records of a relay id all go to partition 0
// of the progress topic, so one log orders them. A relay id works on one
// batch at a time: it claims batch n+1 only after (or in the same
// transaction as) marking batch n sent, and a new incarnation claims only
// after reconciling. So at any moment a relay id has at most one batch
// claimed but not settled, and it is the last batch it claimed.
//
// Not twice. An event reaches Kafka only in the transaction of the batch
// its row is claimed for; to be published again its row must first go
// back to pending. Only step d does that, and only for rows of a batch
// that is not the last batch committed by the relay id. Step d is right
// about that batch: after b no earlier incarnation can commit anything
// (its epoch is fenced), and the fence record follows every earlier
// transaction of the relay id in the partition, so a read_committed read
// that reaches the fence has seen all of them settled; compaction keeps
// only the last batch record per relay id, and the last is the only one
// that can be unsettled. A released batch was therefore never committed
// and never will be: its records were aborted and no read_committed
// consumer sees them. A committed batch becomes sent, and sent rows are
// never claimed again. Batch records are keyed by the relay id and a
// token drawn when the relay id first appears in the database, and step d
// reads only its own key, so a progress topic that outlives its database
// (a recreated schema, whose batch numbers and event ids start over)
// cannot vouch for rows it never saw. A database restored from a backup
// keeps the token but issues batch numbers and event ids again; its last
// batch record then names an incarnation or a batch number the database
// has not issued yet. Step d notices, ignores the record, draws a new
// token and releases every claimed row. Events the restored database
// holds as pending or claimed are then published, even those published
// after the backup was taken: a restore makes its window at-least-once,
// and loses nothing.
//
// Not zero times. A row that commits is pending; some live relay claims
// it; its batch either commits, and the row becomes sent (in step 3, or
// in step d of the next incarnation if the relay died first), or does not,
// and the next incarnation releases the row to be claimed again. Rows
// claimed by a relay id that never comes back stay claimed: start a relay
// with that id (anywhere) to finish them, or release them with weir
// outbox release --relay-id GONE (Relay.Release), which settles them as
// that relay's restart would (its committed batch sent, the rest
// pending) and fences it should it still run. Do not release them with
// an UPDATE back to pending: a batch that committed in Kafka before its
// rows were marked would be published again.
//
// Zombies. Two processes with the same relay id: the later one's steps a
// and b fence the earlier. In Kafka the earlier one's commits fail with
// PRODUCER_FENCED. In the database, claims and reconciliations lock the
// relay's row and check the incarnation, so the earlier process can claim
// nothing after step a (a claim that committed before it is reconciled in
// d), and it stops with ErrFenced. Marking sent is safe even for a zombie,
// as it only follows a committed Kafka transaction. The database decides
// who is current. A relay can be fenced in Kafka while the database still
// names its incarnation: a process that did step a before it, stalled,
// and only now reaches step b; or the coordinator aborted a transaction
// that outlived TxnTimeout. Such a relay starts over at step a instead of
// stopping, and the stale process stops at step d. Relays with one relay
// id on two databases (or two outbox tables) share the transactional id
// and fence each other this way; after three such rounds in a row one of
// them stops with ErrFenced. Give each relay an id of its own.
//
// Kafka transactions make this exactly once for read_committed consumers;
// a read_uncommitted consumer also sees aborted copies of the events of a
// batch interrupted before its commit.
//
// # Ordering
//
// Ids do not give the order: an id is drawn at Write, so a transaction
// that draws a lower id and commits later is published after a higher
// one. What holds with one polling relay: an event is claimed only once
// its transaction committed, the relay claims the lowest pending ids
// first, and a released batch is claimed again before anything newer. So
// if event A's transaction commits before event B is written, A is
// published before B (in an earlier Kafka transaction, or earlier in the
// same one), and events of one key appear in their partition in that
// order. Updates of one business row give exactly that when each writes
// its event after the update, as in the example above: the second
// waits for the first's lock, so its Write comes after the first's
// commit. Events of transactions that overlap have no order. The
// change-data-capture relay publishes in commit order, so there the same
// holds for every two transactions that commit one after the other.
// With several polling relays, batches are published concurrently and a
// released batch may be published after newer ones: per-key order is
// then not guaranteed. Run one relay id per outbox table where order
// matters (several relay processes with the same id give failover, not
// parallelism).
//
// # Limits
//
// An event Kafka refuses (its topic does not exist and is not
// auto-created, or the record exceeds the topic's max.message.bytes, 1 MB
// by default) fails its Kafka transaction each time, and the relay
// cannot go past it. The polling relay restarts, releases the batch and
// claims the oldest pending rows again, which include that event; the
// change-data-capture relay restarts and the slot streams the same
// transaction again. Each attempt is logged at warning level with the
// event's id (and, in change-data-capture mode, its source transaction's
// commit LSN) and the command that skips it. There are two ways on:
//
//   - Fix the cause (create the topic, raise its max.message.bytes); the
//     next attempt publishes the event. In polling mode, fixing or
//     deleting the row also works. In change-data-capture mode it does
//     not: the slot streams the insert as it was committed.
//   - Skip the event: weir outbox skip --relay-id ID --id EVENT-ID (add
//     --mode cdc for a change-data-capture relay, which also takes --lsn
//     COMMIT-LSN to skip a whole source transaction, for instance one
//     whose row was deleted, unless a part of it is published already:
//     a transaction published in parts, see below, whose refused event
//     is in a later part; that skip is refused, skip by id instead, and
//     a skip by LSN recorded while a part is being published is void:
//     the relay logs that it ignores it, so a transaction is never half
//     published and half skipped; a skip by LSN of a transaction the
//     relay is past, published whole, is refused too, also when it was
//     published between the skip's first look and its record; the skip
//     looks again after its record, and only a publication under way
//     then, by a relay session started before the record, which commits
//     after that look, still publishes the transaction); in
//     Go, Relay.Skip, CDCRelay.SkipEvent and CDCRelay.SkipTransaction. The skip is recorded in the progress
//     topic under the relay id and this database's identity, and read by
//     the relay when it starts over after the failed attempt. A skip
//     accepted reaches no consumer (but for that last case of --lsn); every other event is still
//     published exactly once. A polling relay marks the skipped row sent;
//     the record in the progress topic is what tells it from a published
//     one. A skip by id names the event's id and UUID, so it cannot
//     apply to another event given the same id later. With
//     several polling relays on one table, skip the event for each relay
//     id that reports it.
//
// A row whose headers cannot be read as strings stops the polling relay
// until the row is fixed or deleted; in change-data-capture mode it is
// reported with its id and its source transaction's commit LSN, to be
// skipped by --id (skips are checked before a row is decoded, so this
// works also in a later part of a transaction) or by --lsn.
//
// A relay holds one batch in memory: up to BatchSize events, keys and
// payloads included, plus the Kafka client's encoded copy while it
// produces them (in change-data-capture mode, one part of a source
// transaction). Lower BatchSize when events are large.
//
// The progress topic is read from its start at every start; it is created
// compacted with 16 MiB segments, so that stays short. A topic created
// beforehand must have cleanup.policy=compact (and not compact,delete):
// the relay refuses any other, since retention could delete the record of
// a committed batch. The progress topic is the record of what was
// published: deleting it while rows are claimed makes their relay
// release, and so publish again, batches that had committed; deleting it
// (or naming another one) under a change-data-capture relay makes it
// publish again the transactions its slot had not confirmed yet (at
// most those of its last moments before a crash). At start a
// relay waits for every open transaction on the progress topic to end
// (its read is read_committed), at most the longest transaction timeout
// of the relays sharing the topic.
//
// # Change data capture
//
// CDCRelay (weir outbox relay --mode cdc) reads the outbox through
// PostgreSQL logical replication instead of polling. It needs
// wal_level=logical, a role with the REPLICATION attribute that may
// connect for replication, ownership of the outbox table at its first
// start (to create the publication) and a free replication slot on the
// server. At its first start it
// creates a publication of the table's inserts and a logical replication
// slot (pgoutput), both its own: their names (CDCRelay.Names) are
// weir_SCHEMA_TABLE_RELAY-ID, with the table schema-qualified as
// PostgreSQL resolves it, lowercased and cut to fit PostgreSQL's 63-byte
// limit, followed by a hash of the exact schema, table and relay id (and,
// for the slot, the database oid, since slot names are unique in the
// whole server). Relays of tables with the same name in two schemas, or
// of one table under two relay ids, share nothing. An existing
// publication of that name must publish exactly the inserts of the
// table, every row and column; otherwise the relay stops with an error
// naming what it found and the remedy: give the publication back its
// definition (ALTER PUBLICATION ... SET TABLE; for a FOR ALL TABLES
// publication, DROP and CREATE in one transaction). Dropping it for the
// relay to create it again is no remedy: PostgreSQL reads a publication
// as of each change it decodes, and a slot holding changes from before
// the drop fails on them. Rows of other tables that the slot streams
// (for transactions committed while the publication covered them) are
// never published. The relay checks the publication at start and every
// 2 s while it streams; a publication changed under a running relay has
// what the slot holds from before published, then the relay stops with
// ErrSourceChanged. A publication widened to other tables loses nothing.
// One that stopped streaming the table's inserts whole (inserts off, a
// row filter or a column list) is treated as a table taken out of it
// (below): rows committed after the relay stopped are the operator's to
// publish some other way. Rows inserted under a column list are streamed
// without their other columns for ever, even once the publication is
// mended: the relay never publishes them, logs each one (id and event
// UUID), and stops at a recorded position the first time it meets one
// that no earlier stop covers, so that mending the publication is no
// dead end. One changed so while the relay was down is
// found at its start and handled the same way: what the slot streams up
// to that moment is published, the position is recorded, and the error
// says that rows committed after the relay's last recorded position
// whose event UUIDs are not in the topics were kept out of the stream
// (the relay cannot tell when the change was made) and are the
// operator's to publish. Events committed before the slot exists are not its to
// publish, so create the slot (start the relay once) before the
// application writes, or publish the older rows with the polling relay
// first.
//
// The slot streams committed transactions in commit order. The relay
// publishes each source transaction's outbox inserts in one Kafka
// transaction (transactional id weir-outbox.cdc-RELAY-ID, never the
// transactional id of a polling relay), together with
// a progress record naming the source transaction: its commit and end
// LSN, its transaction id, how many of its events are published and a
// digest of them. A source transaction of more than BatchSize events
// (--batch-size) is published in parts of at most BatchSize events, each
// in its own Kafka transaction with a progress record naming the part
// (the first N events of the transaction, in stream order), so that
// memory and the time a produce takes are bounded by the batch size; a
// read_committed consumer then sees such a transaction part by part,
// not all at once. Only after the Kafka commit of a whole source
// transaction does the relay confirm to PostgreSQL (a standby status
// update) the transaction's end, which lets the slot advance and the
// server recycle WAL. While the outbox is idle and other tables write,
// the server reports how far it has streamed; every HeartbeatInterval
// (--heartbeat-interval, 10 s) the relay commits a heartbeat progress
// record naming that position and then confirms it, so that the slot
// does not keep the other tables' WAL. A heartbeat keeps the fields of
// the transaction record before it; a slot confirmed before the
// heartbeat streams again what came before it, and none of that may hold
// an outbox event (a copy of the database restored to an earlier point
// commits its own there), or the relay stops with ErrSourceChanged. A slot is only ever confirmed at
// a position recorded in the progress topic: the end of a transaction
// in Kafka, or a heartbeat before which every transaction was streamed.
//
// Progress is tied to the database it describes. Its key is
// cdc/SYSTEM-ID/DATABASE-OID/SCHEMA.TABLE/RELAY-ID, where SYSTEM-ID is
// the cluster's system identifier (drawn by initdb) and DATABASE-OID the
// database's oid, so LSNs recorded against one database are never read
// as positions in another:
//
//   - Another cluster (a new initdb, or a pg_dump restored into one) or a
//     database dropped and created again (a new oid) has no progress:
//     the relay creates its slot there and publishes every transaction
//     the slot streams, each once. Rows restored by pg_dump into a
//     database whose slot exists are new inserts to it and are published
//     again.
//   - A standby or a base backup keeps the system identifier and the oid
//     but no logical slot (before PostgreSQL 17's failover slots), and
//     may have a shorter history than the one progress was recorded in;
//     a file-system copy, or a standby with a synchronized slot, keeps
//     the slot as it was then. The relay refuses to start, with an
//     error wrapping ErrSourceChanged that says what it found, when its
//     slot is missing while progress exists; when the server's WAL ends
//     before the last published transaction; when the slot is confirmed
//     beyond that transaction (another slot under the same name); or
//     when the slot, confirmed before that transaction, streams at its
//     position a transaction with another transaction id or other
//     events. In each case transactions may have been committed that no
//     slot will ever stream, or positions the progress covers now hold
//     other transactions; the relay cannot tell which events are
//     published, so it does not guess. Publish the rows committed after
//     the transaction the error names some other way, or accept their
//     loss, drop the relay id's publication and slot (weir outbox
//     drop-slot), and start the relay under a new relay id, whose slot
//     starts from that moment.
//   - An outbox table dropped, or moved aside, and created again under
//     the same name is another table (another oid), which the
//     publication does not cover: rows written to it are never
//     streamed. The relay watches for this while it streams (every 2 s,
//     on a connection of its own) and checks it at start (progress
//     records carry the table's oid; a publication whose table was
//     dropped covers none). It then publishes what the slot still holds
//     of the old table, up to the server's WAL position at that moment,
//     and stops with ErrSourceChanged. The remedy: weir outbox drop-slot,
//     mark the rows copied from the old table sent (they were published
//     from it), and run the polling relay on the new table. While it
//     drains, only the old table's rows are published (by its oid, when
//     a progress record names it). A table taken out of the publication
//     (ALTER PUBLICATION ... DROP TABLE) but not replaced is drained the
//     same way; the relay then says to put it back, not to run the
//     polling relay, which would publish the pending rows again, and
//     that rows committed after the position it stopped at are not
//     published by it: rows inserted while the table was out are never
//     streamed, and a row inserted before, whose transaction commits
//     after that position, is streamed once the table is back
//     (PostgreSQL decodes an insert by the publication as of the insert)
//     but not published: the relay records the position in the progress
//     topic (cdc-unpublished/.../LSN, one record per position, every one
//     kept, so a row left out under an earlier stop stays left out after
//     a later one) and logs each such row. The relay cannot know when
//     the table left, only that it was after the position where it last
//     saw it in (its last recorded progress when it finds the change at
//     its start, its table watch's last look while it runs), which its
//     error names: the rows committed after that position whose event
//     UUIDs are not in the topics, and only those, are the operator's
//     to publish some other way (a row inserted before the table left
//     and committed before the stop position was streamed and
//     published); then the operator puts the table back. A publication
//     that stops streaming the table's inserts whole is reported the
//     same way.
//   - weir outbox drop-slot (CDCRelay.DropSlot) first records the drop
//     under this key: the relay id then refuses to start again on this
//     database, with ErrSourceChanged, also if it had published nothing,
//     since the events the dropped slot held are never streamed again.
//
// At start the relay commits a fence record (cdc-fence/RELAY-ID): its
// InitProducerId fences the previous incarnation and aborts its open
// transaction. It then reads the progress topic read_committed up to the
// fence, as the polling relay does, which gives the last source
// transaction whose events are committed in Kafka; any later transaction
// of ours is aborted. It streams from the slot's confirmed position.
// Correctness:
//
//   - Nothing is lost: the slot confirms only positions whose transactions
//     are committed in Kafka, and keeps everything after its confirmed
//     position, so every transaction not yet committed to Kafka is
//     streamed again.
//   - Nothing is published twice: a transaction is committed in Kafka
//     only together with the progress record naming it, and transactions
//     are published in commit order, so every transaction up to the
//     recorded one is in Kafka and every later one is not. The slot may
//     lag the progress topic (a crash between the Kafka commit and the
//     confirmation): it then streams again transactions up to the
//     recorded one, which the relay skips after checking that the
//     recorded one is streamed at its position with the same
//     transaction id and events. After a part, the slot streams that
//     transaction again; the relay checks its first N events against
//     the record and publishes from the next one on.
//   - A zombie cannot publish: the fence aborted its open transaction and
//     makes its next commit fail; and a slot streams to one connection
//     at a time, so a new relay waits (retrying every second) until the
//     old one's connection is gone.
//
// In this mode rows are neither claimed nor marked: they stay pending,
// and the application deletes them when it no longer needs them. One
// relay id streams a table: each relay id has its own slot, every slot
// streams every insert, so two relay ids would each publish every event.
// A relay whose table another relay id's publication covers refuses to
// start (several processes with one relay id are the way to fail over;
// several relays sharing a table's work is the polling mode's). The
// polling relay refuses to start on a table that a change-data-capture
// relay's publication covers, running or stopped, since it would publish
// those pending rows again; and a change-data-capture relay refuses a
// table a polling relay is publishing, naming it, since its slot would
// stream every event that relay publishes. Each relay holds, while it
// runs, a mark of its mode on the table (a session-level advisory lock
// on the table's oid, taken before it looks for the other mode's), which
// goes with its database session when it stops or crashes. A session
// can also end under a running relay (terminated, idle_session_timeout,
// a network cut): the polling relay checks before publishing each batch
// it claimed that its session still holds the mark, and otherwise starts
// over, taking the mark again; it stops for good if a change-data-capture
// relay or publication has taken the table meanwhile. To switch a
// table from polling to change-data-capture, let the polling relays
// publish what is pending, stop them, then start the change-data-capture
// relay: rows committed before its first start are not its to publish. To switch a table from change-data-capture
// to polling, stop the relay, then drop its slot and publication and
// mark sent exactly the rows whose events are in their topics (weir
// outbox drop-slot --mark-published; CDCRelay.DropSlot then
// CDCRelay.MarkPublished, which matches rows by event UUID): the polling
// relay publishes every row left pending. No id bound separates the
// published rows from the others, since the relay publishes in commit
// order, and a row inserted before a later one can commit after the
// relay stopped. A slot whose relay is stopped keeps
// WAL; one that is no longer used must be dropped (weir outbox
// drop-slot, CDCRelay.DropSlot), or it keeps WAL for ever. A server that
// caps what a slot may keep (max_slot_wal_keep_size) invalidates a slot
// left behind, and the events it held are never streamed: the relay
// then refuses to start with ErrSourceChanged, naming the invalidation.
package outbox
