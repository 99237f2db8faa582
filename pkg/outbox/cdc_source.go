package outbox

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// cdcSource is the database a change-data-capture relay streams from, as
// PostgreSQL identifies it. Progress records are keyed by the system
// identifier, the database oid and the table, so that progress recorded
// against one database is never read as progress in another: a cluster
// created by another initdb has another system identifier, a database
// dropped and created again another oid. A standby and a base backup keep
// both (they are the same database, with a possibly shorter history);
// what the relay checks for them is described at resumeCheck.
type cdcSource struct {
	systemID string        // drawn by initdb; kept by standbys and base backups
	timeline int32         // a new one after a promotion or an archive recovery
	walEnd   pglogrepl.LSN // the server's WAL position when the relay started
	dbOID    uint32
	schema   string // the outbox table as PostgreSQL resolved it
	table    string
	tableOID uint32
}

// qualified is the table's schema-qualified name, unquoted.
func (s cdcSource) qualified() string { return s.schema + "." + s.table }

// progressKey is the key of the relay's progress records for this source.
func (s cdcSource) progressKey(relayID string) string {
	return cdcKeyPrefix + s.systemID + "/" + strconv.FormatUint(uint64(s.dbOID), 10) + "/" + s.qualified() + "/" + relayID
}

// skipPrefix starts the keys of the records that skip events of this
// source (see skip.go).
func (s cdcSource) skipPrefix(relayID string) string {
	return cdcSkipKeyPrefix + s.systemID + "/" + strconv.FormatUint(uint64(s.dbOID), 10) + "/" + s.qualified() + "/" + relayID + "/"
}

// unpublishedKey is the key of the relay's recordUnpublished records for
// this source.
func (s cdcSource) unpublishedKey(relayID string) string {
	return cdcUnpublishedKeyPrefix + s.systemID + "/" + strconv.FormatUint(uint64(s.dbOID), 10) + "/" + s.qualified() + "/" + relayID
}

// identifySource asks the server on the replication connection conn who
// it is, and resolves table (a quoted, possibly qualified name) to its
// schema and oid.
func identifySource(ctx context.Context, conn *pgconn.PgConn, table string) (cdcSource, error) {
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return cdcSource{}, fmt.Errorf("outbox: identify system: %w", err)
	}
	src := cdcSource{systemID: sys.SystemID, timeline: sys.Timeline, walEnd: sys.XLogPos}
	row, err := queryRow(ctx, conn, `SELECT d.oid, n.nspname, c.relname, c.oid
		FROM pg_database d, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE d.datname = current_database() AND c.oid = to_regclass(`+quoteLiteral(table)+`)`)
	if err != nil {
		return cdcSource{}, fmt.Errorf("outbox: look up table %s: %w", table, err)
	}
	if row == nil {
		return cdcSource{}, fmt.Errorf("outbox: table %s not found (run weir outbox migrate)", table)
	}
	db, err1 := strconv.ParseUint(row[0], 10, 32)
	tab, err2 := strconv.ParseUint(row[3], 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return cdcSource{}, fmt.Errorf("outbox: look up table %s: %w", table, err)
	}
	src.dbOID, src.schema, src.table, src.tableOID = uint32(db), row[1], row[2], uint32(tab)
	row, err = queryRow(ctx, conn, `SELECT 1 FROM pg_attribute WHERE attrelid = `+row[3]+` AND attname = 'event_uuid' AND NOT attisdropped`)
	if err != nil {
		return cdcSource{}, fmt.Errorf("outbox: look up table %s: %w", table, err)
	}
	if row == nil {
		return cdcSource{}, fmt.Errorf("outbox: table %s has no event_uuid column: run weir outbox migrate (it adds the column)", src.qualified())
	}
	return src, nil
}

// queryRow runs q, a query of at most one row, on conn and returns its
// row as text (nil if none; NULLs become "").
func queryRow(ctx context.Context, conn *pgconn.PgConn, q string) ([]string, error) {
	res, err := conn.Exec(ctx, q).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(res) != 1 || len(res[0].Rows) == 0 {
		return nil, nil
	}
	row := make([]string, len(res[0].Rows[0]))
	for i, v := range res[0].Rows[0] {
		row[i] = string(v)
	}
	return row, nil
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings on).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// slotState is a replication slot as pg_replication_slots shows it.
type slotState struct {
	exists    bool
	confirmed pglogrepl.LSN // confirmed_flush_lsn: transactions committed before it are not streamed again
	lost      bool          // wal_status lost: the server removed WAL the slot still needed
}

// lookUpSlot returns the state of the slot named slot.
func lookUpSlot(ctx context.Context, conn *pgconn.PgConn, slot string) (slotState, error) {
	row, err := queryRow(ctx, conn, `SELECT coalesce(confirmed_flush_lsn::text, ''), slot_type, coalesce(plugin, ''), database = current_database(),
		coalesce(wal_status, '') = 'lost' FROM pg_replication_slots WHERE slot_name = `+quoteLiteral(slot))
	if err != nil {
		return slotState{}, fmt.Errorf("outbox: look up slot %s: %w", slot, err)
	}
	if row == nil {
		return slotState{}, nil
	}
	if row[1] != "logical" || row[2] != "pgoutput" || row[3] != "t" {
		return slotState{}, fmt.Errorf("outbox: slot %s exists but is not a pgoutput slot of this database (type %s, plugin %s)", slot, row[1], row[2])
	}
	st := slotState{exists: true, lost: row[4] == "t"}
	if row[0] != "" {
		if st.confirmed, err = pglogrepl.ParseLSN(row[0]); err != nil {
			return slotState{}, fmt.Errorf("outbox: slot %s: %w", slot, err)
		}
	}
	return st, nil
}

// cdcProgress is the value of a change-data-capture progress record: the
// last source transaction the relay committed to Kafka, and where it is.
type cdcProgress struct {
	Relay     string `json:"relay"`
	SystemID  string `json:"system_id"`
	Timeline  int32  `json:"timeline"`
	Database  uint32 `json:"database_oid"`
	Table     string `json:"table"`
	Slot      string `json:"slot"`
	CommitLSN string `json:"commit_lsn"`
	// EndLSN is the end of the transaction's commit record; empty for
	// a part.
	EndLSN string `json:"end_lsn,omitempty"`
	// XID and Digest fingerprint the transaction: its transaction id
	// and a hash of its first Events events in stream order. A restored
	// or failed-over database can hold a different transaction at the
	// same position.
	XID    uint32 `json:"xid"`
	Events int    `json:"events"`
	Digest string `json:"digest"`
	// Partial says that only the first Events events of the transaction
	// are in Kafka: it is published in parts of at most BatchSize events.
	Partial bool `json:"partial,omitempty"`
	// Dropped says that DropSlot dropped the relay's slot (Slot): the
	// relay id is retired on this database, since events committed while
	// the slot held them are never streamed again. Only the identity
	// fields are set.
	Dropped bool `json:"dropped,omitempty"`
	// Heartbeat, when set, is a position after the transaction (if any)
	// up to which the slot streamed every committed transaction and
	// none held an outbox event: written by an idle relay
	// (RelayConfig.HeartbeatInterval), with the transaction fields of
	// the record before it, so that both can be checked on a resume. A
	// transaction committed at that position or later is not published
	// yet.
	Heartbeat string `json:"heartbeat_lsn,omitempty"`
	// TableOID is the outbox table's oid. A table dropped and created
	// again has another, and rows written to it before a publication
	// covered it are never streamed (see tableReplaced).
	TableOID uint32 `json:"table_oid,omitempty"`

	commit    pglogrepl.LSN // parsed CommitLSN; 0 when the record names no transaction
	end       pglogrepl.LSN // parsed EndLSN; the commit LSN for a part
	heartbeat pglogrepl.LSN // parsed Heartbeat
}

// hasTxn says whether the record names a transaction (a heartbeat of a
// relay that has published nothing yet names none).
func (p *cdcProgress) hasTxn() bool { return p.CommitLSN != "" }

// through is the position up to which the record covers the stream.
func (p *cdcProgress) through() pglogrepl.LSN { return max(p.end, p.heartbeat) }

// published says whether a transaction committed at lsn is in Kafka, or
// had nothing to publish, by this record: at or before its transaction,
// or before its heartbeat.
func (p *cdcProgress) published(lsn pglogrepl.LSN) bool {
	return p.hasTxn() && lsn <= p.commit || lsn < p.heartbeat
}

// lastPublished describes the record's last transaction for errors.
func (p *cdcProgress) lastPublished() string {
	s := "no published transaction"
	if p.hasTxn() {
		s = fmt.Sprintf("its last published transaction committed at %s (xid %d, timeline %d)", p.CommitLSN, p.XID, p.Timeline)
	}
	if p.Heartbeat != "" {
		s += fmt.Sprintf(" and a heartbeat at %s (nothing to publish before it)", p.Heartbeat)
	}
	return s
}

// parse fills in the parsed positions.
func (p *cdcProgress) parse() error {
	if p.Dropped {
		return nil
	}
	var err error
	if p.Heartbeat != "" {
		if p.heartbeat, err = pglogrepl.ParseLSN(p.Heartbeat); err != nil {
			return err
		}
	}
	if !p.hasTxn() {
		if p.Heartbeat == "" {
			return errors.New("neither a transaction nor a heartbeat")
		}
		return nil
	}
	if p.commit, err = pglogrepl.ParseLSN(p.CommitLSN); err != nil {
		return err
	}
	if p.Partial {
		p.end = p.commit
		return nil
	}
	p.end, err = pglogrepl.ParseLSN(p.EndLSN)
	return err
}

// eventHash hashes events (ids, UUIDs, topics, keys, payloads, headers) in
// stream order; sum may be taken at any point and more added after.
type eventHash struct{ h hash.Hash }

func newEventHash() eventHash { return eventHash{sha256.New()} }

func (d eventHash) add(e claimed) {
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		d.h.Write(n[:])
		d.h.Write(b)
	}
	binary.BigEndian.PutUint64(n[:], uint64(e.id))
	d.h.Write(n[:])
	field([]byte(e.uuid))
	field([]byte(e.topic))
	field(e.key)
	field(e.payload)
	keys := make([]string, 0, len(e.headers))
	for k := range e.headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field([]byte(k))
		field([]byte(e.headers[k]))
	}
}

func (d eventHash) sum() string { return hex.EncodeToString(d.h.Sum(nil)[:16]) }

// readCDCProgress reads the progress topic up to the fence record at
// fenceOffset (see readProgress for why the fence makes the answer
// complete) and returns the last progress recorded for src, or nil, and
// the events and transactions of src skipped by hand.
func readCDCProgress(ctx context.Context, cfg RelayConfig, src cdcSource, fenceOffset int64) (*cdcProgress, *skips, error) {
	var last *cdcProgress
	sk := &skips{}
	key, skipPrefix, unpub := src.progressKey(cfg.RelayID), src.skipPrefix(cfg.RelayID), src.unpublishedKey(cfg.RelayID)
	// An earlier version kept one stop position, under unpub itself.
	isUnpub := func(k string) bool { return k == unpub || strings.HasPrefix(k, unpub+"/") }
	want := func(k string) bool { return k == key || isUnpub(k) || strings.HasPrefix(k, skipPrefix) }
	err := scanProgress(ctx, cfg, want, fenceOffset, func(offset int64, k string, value []byte) error {
		if isUnpub(k) {
			var u unpublishedRecord
			if err := json.Unmarshal(value, &u); err != nil {
				return fmt.Errorf("outbox: record at offset %d: %w", offset, err)
			}
			lsn, err := pglogrepl.ParseLSN(u.Before)
			if err != nil {
				return fmt.Errorf("outbox: record at offset %d: %w", offset, err)
			}
			if !slices.Contains(sk.stops, lsn) {
				sk.stops = append(sk.stops, lsn)
			}
			return nil
		}
		if k != key {
			return sk.add(offset, value)
		}
		var p cdcProgress
		if err := json.Unmarshal(value, &p); err != nil {
			return fmt.Errorf("outbox: progress record at offset %d: %w", offset, err)
		}
		if err := p.parse(); err != nil {
			return fmt.Errorf("outbox: progress record at offset %d: %w", offset, err)
		}
		last = &p
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return last, sk, nil
}

// resumePlan is what the stream must check before it publishes anything
// new (see CDCRelay.stream).
type resumePlan struct {
	// verify is the recorded transaction, which the slot streams again
	// and which must be the same one; nil when the slot is past it.
	verify *cdcProgress
	// quietUntil is the recorded heartbeat's position when the slot is
	// confirmed before it: no transaction the slot streams before it may
	// hold an outbox event, since none did when it was recorded.
	quietUntil pglogrepl.LSN
	// replacedOID is the oid of the outbox table the progress was
	// recorded for, when the table of that name is now another: the
	// relay drains what the slot holds of the old one, then stops.
	replacedOID uint32
}

// resumeCheck decides, before streaming, whether the slot and the server
// can continue the history that last (the relay's last progress record
// for this source, nil if none) was recorded in, and what the stream
// must check again (resumePlan); or it returns an error wrapping
// ErrSourceChanged.
//
// The relay confirms to its slot only positions recorded in the progress
// topic (the end of a transaction it committed to Kafka or found
// recorded there, or a heartbeat's position), so the slot of the same
// history is confirmed at most up to what last covers. Four things
// betray another history, or a slot that lost what it held:
//   - the slot is missing: it was dropped, or the database comes from a
//     base backup or a standby (neither copies logical slots), and the
//     transactions committed since the last one published may never be
//     streamed;
//   - the server invalidated the slot (max_slot_wal_keep_size);
//   - the server's WAL ends before what last covers: the database went
//     back in time (a restore, or a failover to a standby that had not
//     received it), and new transactions will reuse positions the
//     progress covers;
//   - the slot is confirmed beyond what last covers: it is not the slot
//     that progress was recorded with (dropped and created again).
//
// A slot confirmed exactly there streams only later transactions. A slot
// confirmed before last's transaction (the relay stopped between a Kafka
// commit and its confirmation) streams it again, and the stream checks
// that it is the same one; one confirmed before last's heartbeat streams
// again what came before it, and the stream checks that none of it holds
// an outbox event (a copy of the database restored to an earlier point
// commits its own there).
func resumeCheck(src cdcSource, relayID, slotName string, slot slotState, last *cdcProgress) (resumePlan, error) {
	var plan resumePlan
	if slot.lost {
		return plan, fmt.Errorf("%w: replication slot %s was invalidated: the server removed WAL it still needed "+
			"(it kept more than max_slot_wal_keep_size allows, or idle_replication_slot_timeout passed), so transactions committed "+
			"after its confirmed position %s are never streamed. Publish the outbox rows committed since then some other way "+
			"(or accept their loss), then drop this relay id's publication and slot (weir outbox drop-slot --relay-id %s) "+
			"and start the relay under a new --relay-id: its slot starts from that moment",
			ErrSourceChanged, slotName, slot.confirmed, relayID)
	}
	if last == nil {
		return plan, nil
	}
	if last.Dropped {
		return plan, fmt.Errorf("%w: the progress topic records that replication slot %s of relay id %s on system %s, database oid %d, "+
			"table %s was dropped (weir outbox drop-slot): events committed while it held them are never streamed again, "+
			"so the relay id is retired on this database; publish those outbox rows some other way (or accept their loss) "+
			"and start the relay under a new --relay-id: its slot starts from that moment",
			ErrSourceChanged, last.Slot, relayID, last.SystemID, last.Database, last.Table)
	}
	where := fmt.Sprintf("%s, of system %s, database oid %d, table %s", last.lastPublished(), last.SystemID, last.Database, last.Table)
	remedy := "; events committed since then may never be streamed, and the relay will not guess. " +
		"Publish the outbox rows committed after that some other way (or accept their loss), " +
		"then drop this relay id's publication and slot (weir outbox drop-slot --relay-id " + relayID + ") " +
		"and start the relay under a new --relay-id: its slot starts from that moment"
	through := last.through()
	switch {
	case !slot.exists:
		return plan, fmt.Errorf("%w: replication slot %s is missing, but the progress topic records %s "+
			"(the slot was dropped, or the database was restored from a base backup or failed over to a standby, neither of which keeps logical slots)%s",
			ErrSourceChanged, slotName, where, remedy)
	case src.walEnd < through:
		return plan, fmt.Errorf("%w: the server's WAL ends at %s (timeline %d), before %s that the progress topic covers with %s "+
			"(the database was restored to an earlier point or failed over to a standby that had not received it)%s",
			ErrSourceChanged, src.walEnd, src.timeline, through, where, remedy)
	case slot.confirmed > through:
		return plan, fmt.Errorf("%w: replication slot %s is confirmed at %s, beyond %s that the progress topic covers with %s: "+
			"it is not the slot the progress was recorded with (dropped and created again?)%s",
			ErrSourceChanged, slotName, slot.confirmed, through, where, remedy)
	}
	if last.hasTxn() && (slot.confirmed < last.end || last.Partial) {
		// A part of a transaction is never confirmed: the slot streams
		// the transaction again.
		plan.verify = last
	}
	if slot.confirmed < last.heartbeat {
		plan.quietUntil = last.heartbeat
	}
	if last.TableOID != 0 && last.TableOID != src.tableOID {
		plan.replacedOID = last.TableOID
	}
	return plan, nil
}

// tableReplaced is the error of a relay whose outbox table is no longer
// the one (oid was) its publication covered: the table was dropped, and
// maybe created again. Rows written to a new table before a publication
// covers it are never streamed, by any slot, so the relay id is retired
// and the polling relay, which reads the table itself, publishes what is
// pending.
func tableReplaced(src cdcSource, relayID string, was uint32) error {
	what := fmt.Sprintf("the outbox table %s (oid %d) was dropped", src.qualified(), was)
	if src.tableOID != 0 && src.tableOID != was {
		what += fmt.Sprintf(" and created again (oid %d)", src.tableOID)
	}
	return tableGone(what, relayID)
}

// tableUnpublished is the error of a relay whose outbox table, still
// the same table, was taken out of its publication (ALTER PUBLICATION
// ... DROP TABLE) at a moment it cannot know, after since (where it last
// saw the table in: its last recorded position, or its table watch's
// last look) and before to, the end of its drain. Rows inserted while
// the table is out are never streamed; a row inserted before, in a
// transaction still open, is streamed once it commits (PostgreSQL reads
// the publication as of the insert), published by the drain if it
// commits before to, and never by the relay if after (see
// skips.unpublished). Rows committed before since were streamed. So the
// rows committed after since whose event UUIDs are not in the topics are
// exactly the operator's to publish. The rows it published are still
// pending (this mode marks none), so the polling relay would publish
// them again.
func tableUnpublished(src cdcSource, pub, relayID string, since string, to pglogrepl.LSN) error {
	return fmt.Errorf("%w: the outbox table %s (oid %d) was taken out of publication %s, after %s: rows inserted while it is out "+
		"are never streamed. The relay published what the slot streamed up to %s, and no row committed after %s "+
		"(a row inserted before the table left and committed after %s is not published by this relay either: it logs each "+
		"one it meets). Do not run the polling relay on this table: the rows this relay published are still pending, "+
		"and it would publish them again. Publish some other way the rows committed since %s whose event UUIDs are not in "+
		"the topics (a row inserted before the table left and committed before %s was streamed and published), "+
		"then put the table back (ALTER PUBLICATION %s ADD TABLE %s) and start the relay again: it publishes the rows inserted from then on",
		ErrSourceChanged, src.qualified(), src.tableOID, pub, since, to, to, to, since, to, pub, pgx.Identifier{src.schema, src.table}.Sanitize())
}

// tableGone is tableReplaced's error for what happened to the table.
func tableGone(what, relayID string) error {
	return fmt.Errorf("%w: %s: rows written to a table before a publication covers it are never streamed. "+
		"Every event the slot held of the old table is published. Retire this relay id: weir outbox drop-slot --relay-id %s "+
		"(it drops the slot and the publication); rows copied into the table from the old one were published from it, "+
		"so mark them sent (UPDATE ... SET state = 'sent') or delete them; then weir outbox relay --mode poll publishes "+
		"every row left pending, each once",
		ErrSourceChanged, what, relayID)
}

// tableWatch checks, every cdcTableCheckInterval while the relay
// streams, that the publication still covers the outbox table it
// started with and that the table's name still names it. A dropped
// table leaves the publication silently, a table moved aside stays in it
// under another name, and in both cases the stream carries nothing of a
// table created in its place. The replication connection cannot run
// queries while it streams, so the watch has a connection of its own.
type tableWatch struct {
	dsn  string
	pub  string
	src  cdcSource
	conn *pgconn.PgConn
	next time.Time
	// seen is where the watch (or, before its first look, the start)
	// last found the table in its publication as the relay needs it: a
	// change found later was made after it.
	seen string
}

// cdcTableCheckInterval is how often tableWatch looks.
const cdcTableCheckInterval = 2 * time.Second

// drain is a relay's way out once its outbox table is replaced: it
// publishes what the slot streams up to position to (the server's WAL
// insert position when the replacement was seen, so every event
// committed to the old table is before it, flushed or not), then stops
// with err.
type drain struct {
	to  pglogrepl.LSN
	err error
	// unpublished says that rows of the table inserted before to may
	// be missing from the stream, or streamed only after to once the
	// publication is mended: the relay records to (recordUnpublished)
	// before it stops, and its error tells the operator to publish the
	// rows committed after to some other way.
	unpublished bool
	// byName says that the old table's oid is unknown (no progress
	// recorded it): its rows are told by the name they had.
	byName bool
}

// check returns the drain to start once the table was replaced, nil
// while it was not. Failing to look is not a finding: the next look may
// succeed, and the stream reports a lost server itself. A name that
// names no table (moved aside for a moment) is not one either: nothing
// can be written to it.
func (w *tableWatch) check(ctx context.Context, relayID string) *drain {
	if time.Now().Before(w.next) {
		return nil
	}
	w.next = time.Now().Add(cdcTableCheckInterval)
	if w.conn == nil || w.conn.IsClosed() {
		conn, err := pgconn.Connect(ctx, w.dsn)
		if err != nil {
			return nil
		}
		w.conn = conn
	}
	qctx, cancel := context.WithTimeout(ctx, cdcTableCheckInterval)
	defer cancel()
	// pg_publication_tables, not pg_publication_rel: a publication FOR
	// ALL TABLES (or FOR TABLES IN SCHEMA) covers the table with no
	// row of its own there.
	row, err := queryRow(qctx, w.conn, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables t
		JOIN pg_namespace n ON n.nspname = t.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename
		WHERE t.pubname = `+quoteLiteral(w.pub)+` AND c.oid = `+strconv.FormatUint(uint64(w.src.tableOID), 10)+`),
		(SELECT coalesce(max(c.oid::bigint), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = `+quoteLiteral(w.src.schema)+` AND c.relname = `+quoteLiteral(w.src.table)+`),
		pg_current_wal_insert_lsn()::text`)
	if err != nil || row == nil {
		return nil
	}
	now, _ := strconv.ParseUint(row[1], 10, 32)
	to, err := pglogrepl.ParseLSN(row[2])
	if err != nil {
		return nil
	}
	if row[0] == "t" && (now == 0 || uint32(now) == w.src.tableOID) {
		// The table is covered: is it still published whole, inserts
		// and every row? What the slot holds from before a change is
		// published, then the relay stops.
		var wrong publicationWrong
		err := checkPublication(qctx, w.conn, w.pub, w.src)
		if errors.As(err, &wrong) {
			if wrong.widened {
				// Every insert of the table is still streamed, whole:
				// nothing is missed, and rows of other tables are
				// never events.
				return &drain{to: to, err: fmt.Errorf("%w: publication %s changed while the relay ran (%w); every event is published, "+
					"and no row of another table is: %s, then start the relay again",
					ErrSourceChanged, w.pub, wrong.finding, publicationRemedy(w.pub, w.src, wrong.allTables))}
			}
			return &drain{to: to, unpublished: true, err: fmt.Errorf("%w: publication %s changed while the relay ran, after %s (%w); rows "+
				"inserted into %s since are not streamed as the relay needs them. The relay published what the slot streamed whole up to %s, "+
				"and no row committed after %s (a row inserted before the change, in a transaction that commits after %s, is not published "+
				"by this relay either, nor is a row streamed without all its columns, under a column list: it logs each one it meets). "+
				"Publish some other way the rows committed since %s whose event UUIDs are not in the topics, "+
				"then %s and start the relay again: it publishes the rows inserted from then on",
				ErrSourceChanged, w.pub, w.seen, wrong.finding, w.src.qualified(), to, to, to, w.seen, publicationRemedy(w.pub, w.src, wrong.allTables))}
		}
		if err == nil {
			w.seen = to.String()
		}
		return nil
	}
	if uint32(now) == w.src.tableOID {
		// The same table, taken out of the publication.
		return &drain{to: to, unpublished: true, err: tableUnpublished(w.src, w.pub, relayID, w.seen, to)}
	}
	src := w.src
	src.tableOID = uint32(now)
	return &drain{to: to, err: tableReplaced(src, relayID, w.src.tableOID)}
}

// insertLSN is the server's WAL insert position, asked on the watch's
// connection.
func (w *tableWatch) insertLSN(ctx context.Context) (pglogrepl.LSN, error) {
	if w.conn == nil || w.conn.IsClosed() {
		conn, err := pgconn.Connect(ctx, w.dsn)
		if err != nil {
			return 0, fmt.Errorf("outbox: database: %w", err)
		}
		w.conn = conn
	}
	return walInsertLSN(ctx, w.conn)
}

// close closes the watch's connection.
func (w *tableWatch) close(ctx context.Context) {
	if w.conn != nil {
		w.conn.Close(ctx)
	}
}

// walInsertLSN is the server's WAL insert position: past every record
// written, committed or not, flushed or not.
func walInsertLSN(ctx context.Context, conn *pgconn.PgConn) (pglogrepl.LSN, error) {
	row, err := queryRow(ctx, conn, `SELECT pg_current_wal_insert_lsn()::text`)
	if err != nil {
		return 0, fmt.Errorf("outbox: WAL position: %w", err)
	}
	if row == nil {
		return 0, errors.New("outbox: WAL position: no answer")
	}
	return pglogrepl.ParseLSN(row[0])
}
