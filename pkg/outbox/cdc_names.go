package outbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxIdentifierBytes is PostgreSQL's limit on names (NAMEDATALEN - 1);
// longer names are silently truncated, which could make two relays share
// one.
const maxIdentifierBytes = 63

// cdcNames returns the replication slot and the publication of relay
// relayID for src's table. Both start with a readable part (weir_,
// schema, table, relay id; lowercased, other characters than a-z, 0-9
// and _ replaced, cut to fit) and end with a hash of the exact names,
// which keeps them distinct when the readable parts are not. Slot names
// are unique in the whole server, so the slot's hash also covers the
// database oid; publications belong to one database.
func cdcNames(src cdcSource, relayID string) (slot, pub string) {
	readable := "weir_" + src.schema + "_" + src.table + "_" + relayID
	db := strconv.FormatUint(uint64(src.dbOID), 10)
	return hashedName(readable, "slot", db, src.schema, src.table, relayID),
		hashedName(readable, "publication", src.schema, src.table, relayID)
}

// hashedName is readable, made a valid slot name and cut to fit, followed
// by a hash of parts, within maxIdentifierBytes.
func hashedName(readable string, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	suffix := "_" + hex.EncodeToString(h[:6])
	b := []byte(strings.ToLower(readable))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	if n := maxIdentifierBytes - len(suffix); len(b) > n {
		b = b[:n]
	}
	return string(b) + suffix
}

// Names returns the replication slot and the publication the relay uses
// (or would create) in its database, for instance to drop an unused slot
// with pg_drop_replication_slot. It connects to the database to resolve
// the table's schema and the database's oid.
func (r *CDCRelay) Names(ctx context.Context) (slot, publication string, err error) {
	conn, err := r.connect(ctx)
	if err != nil {
		return "", "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	src, err := identifySource(ctx, conn, r.n.table)
	if err != nil {
		return "", "", err
	}
	slot, publication = cdcNames(src, r.cfg.RelayID)
	return slot, publication, nil
}

// publicationWrong is checkPublication's finding of a publication that
// publishes more or less than the inserts of the whole table: at start,
// its remedy is to give it back its definition (publicationRemedy);
// while the relay streams, the relay stops (tableWatch) and says what
// changed.
type publicationWrong struct {
	finding error
	pub     string
	src     cdcSource
	// widened says that the publication still streams every insert of
	// the table, whole, and other tables' rows besides: no event is
	// missed while it is so.
	widened bool
	// allTables says that it is FOR ALL TABLES, which cannot be altered
	// to cover one table.
	allTables bool
}

func (e publicationWrong) Error() string {
	return e.finding.Error() + ": " + publicationRemedy(e.pub, e.src, e.allTables) + ", then start the relay again"
}

// publicationRemedy is how an operator gives publication pub back its
// definition. The publication must exist at every moment: PostgreSQL
// reads it, as of each change, for every transaction the slot streams,
// and a slot holding changes from before a DROP PUBLICATION fails on
// them ("publication does not exist") even once it is created again. So
// the remedy alters it, or drops and creates it in one transaction. Rows
// of other tables that the slot streams for transactions committed while
// the publication covered them are left out by the relay.
func publicationRemedy(pub string, src cdcSource, allTables bool) string {
	table := pgx.Identifier{src.schema, src.table}.Sanitize()
	if allTables {
		return "drop it and create it again for the table alone in one transaction (BEGIN; DROP PUBLICATION " + pub +
			"; CREATE PUBLICATION " + pub + " FOR TABLE " + table + " WITH (publish = 'insert'); COMMIT)"
	}
	return "give it back its definition (ALTER PUBLICATION " + pub + " SET TABLE " + table +
		"; ALTER PUBLICATION " + pub + " SET (publish = 'insert'))"
}

// errPublicationEmpty is checkPublication's finding of a publication that
// covers no table: its table was dropped, or taken out of it.
var errPublicationEmpty = errors.New("outbox: the publication covers no table")

// publicationElsewhere is checkPublication's finding of a publication
// that covers exactly one table, inserts only, but not the outbox table
// by its name: the relay's table moved aside (another schema or name,
// same oid) if the progress names that oid, else another table.
type publicationElsewhere struct {
	oid uint32
	err error
}

func (e *publicationElsewhere) Error() string { return e.err.Error() }

// checkPublication verifies that the publication pub, which exists,
// publishes inserts of src's table and of nothing else, all rows and all
// columns: the relay would otherwise publish another table's rows (a
// publication created for another table under this name) or miss some of
// its own.
func checkPublication(ctx context.Context, conn *pgconn.PgConn, pub string, src cdcSource) error {
	row, err := queryRow(ctx, conn, `SELECT p.puballtables, p.pubinsert,
			(SELECT coalesce(string_agg(t.schemaname || '.' || t.tablename, ', ' ORDER BY 1), '')
			 FROM pg_publication_tables t WHERE t.pubname = p.pubname),
			current_setting('server_version_num')::int >= 150000
		FROM pg_publication p WHERE p.pubname = `+quoteLiteral(pub))
	if err != nil {
		return fmt.Errorf("outbox: look up publication %s: %w", pub, err)
	}
	if row == nil {
		return fmt.Errorf("outbox: publication %s vanished", pub)
	}
	want := src.qualified()
	if row[0] != "t" && row[2] == "" {
		// Its table was dropped: DROP TABLE takes it out of every
		// publication.
		return errPublicationEmpty
	}
	if row[0] != "t" && row[1] == "t" && row[2] != want && !strings.Contains(row[2], ", ") {
		moved, err := queryRow(ctx, conn, `SELECT r.prrelid FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
			WHERE p.pubname = `+quoteLiteral(pub))
		if err != nil {
			return fmt.Errorf("outbox: look up publication %s: %w", pub, err)
		}
		if moved != nil {
			oid, _ := strconv.ParseUint(moved[0], 10, 32)
			return &publicationElsewhere{oid: uint32(oid), err: fmt.Errorf("outbox: publication %s publishes %s, not %s: %s, then start the relay again",
				pub, row[2], want, publicationRemedy(pub, src, false))}
		}
	}
	wrong := publicationWrong{pub: pub, src: src, allTables: row[0] == "t"}
	if row[0] == "t" || row[1] != "t" || row[2] != want {
		wrong.finding = fmt.Errorf("outbox: publication %s publishes %s (all tables %s, inserts %s), not the inserts of exactly %s",
			pub, orNone(row[2]), row[0], row[1], want)
		covered := row[0] == "t" || slices.Contains(strings.Split(row[2], ", "), want)
		if row[1] == "t" && covered {
			// Wider than the table: is the table itself still whole?
			wrong.widened = wholeTable(ctx, conn, pub, src, row[3] == "t") == nil
		}
		return wrong
	}
	if err := wholeTable(ctx, conn, pub, src, row[3] == "t"); err != nil {
		return err
	}
	return nil
}

// wholeTable checks that publication pub has no row filter or column list
// on src's table (none exist before PostgreSQL 15, v15).
func wholeTable(ctx context.Context, conn *pgconn.PgConn, pub string, src cdcSource, v15 bool) error {
	if !v15 {
		return nil
	}
	want := src.qualified()
	row, err := queryRow(ctx, conn, `SELECT count(*) FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
		WHERE p.pubname = `+quoteLiteral(pub)+` AND r.prrelid = `+strconv.FormatUint(uint64(src.tableOID), 10)+`
		AND (r.prqual IS NOT NULL OR r.prattrs IS NOT NULL)`)
	if err != nil {
		return fmt.Errorf("outbox: look up publication %s: %w", pub, err)
	}
	if row != nil && row[0] != "0" {
		return publicationWrong{finding: fmt.Errorf("outbox: publication %s has a row filter or a column list on %s: the relay must see every row whole",
			pub, want), pub: pub, src: src}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "no table"
	}
	return s
}

// DropSlot drops the relay's replication slot and publication, for a
// relay id that will not run again: an unused slot keeps WAL on the
// server for ever. Events committed since the relay last published are
// then never published by it. Before dropping an existing slot it
// commits a record to the progress topic, under the relay id and the
// database's identity, saying so (in the relay's Kafka transaction, which
// also fences a stalled process of the relay id): the relay id then
// refuses to start again on this database (see ErrSourceChanged), also
// when it had published nothing yet, rather than create a new slot and
// carry on without the events the dropped one held. It returns the names
// of what it dropped (empty for what did not exist), and fails, dropping
// nothing, while a relay is streaming from the slot.
func (r *CDCRelay) DropSlot(ctx context.Context) (slot, publication string, err error) {
	conn, err := r.connect(ctx)
	if err != nil {
		return "", "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	src, err := identifySource(ctx, conn, r.n.table)
	if err != nil {
		return "", "", err
	}
	slotName, pubName := cdcNames(src, r.cfg.RelayID)
	st, err := lookUpSlot(ctx, conn, slotName)
	if err != nil {
		return "", "", err
	}
	if st.exists {
		if err := r.recordDropped(ctx, conn, src, slotName); err != nil {
			return "", "", err
		}
		if err := pglogrepl.DropReplicationSlot(ctx, conn, slotName, pglogrepl.DropReplicationSlotOptions{}); err != nil {
			return "", "", fmt.Errorf("outbox: drop slot %s: %w", slotName, err)
		}
		slot = slotName
	}
	row, err := queryRow(ctx, conn, `SELECT 1 FROM pg_publication WHERE pubname = `+quoteLiteral(pubName))
	if err != nil {
		return slot, "", fmt.Errorf("outbox: look up publication %s: %w", pubName, err)
	}
	if row != nil {
		if _, err := conn.Exec(ctx, `DROP PUBLICATION IF EXISTS `+pubName).ReadAll(); err != nil {
			return slot, "", fmt.Errorf("outbox: drop publication %s: %w", pubName, err)
		}
		publication = pubName
	}
	return slot, publication, nil
}

// recordDropped commits the progress record saying that slot is about to
// be dropped, unless a relay streams from it.
func (r *CDCRelay) recordDropped(ctx context.Context, conn *pgconn.PgConn, src cdcSource, slot string) error {
	row, err := queryRow(ctx, conn, `SELECT active FROM pg_replication_slots WHERE slot_name = `+quoteLiteral(slot))
	if err != nil {
		return fmt.Errorf("outbox: look up slot %s: %w", slot, err)
	}
	if row != nil && row[0] == "t" {
		return fmt.Errorf("outbox: drop slot %s: a relay is streaming from it; stop it first", slot)
	}
	v, err := json.Marshal(cdcProgress{
		Relay: r.cfg.RelayID, SystemID: src.systemID, Timeline: src.timeline, Database: src.dbOID,
		Table: src.qualified(), Slot: slot, Dropped: true,
	})
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(r.clientOpts()...)
	if err != nil {
		return fmt.Errorf("outbox: kafka client: %w", err)
	}
	defer cl.Close()
	if err := ensureProgressTopic(ctx, cl, r.cfg.ProgressTopic); err != nil {
		return err
	}
	rec := &kgo.Record{Topic: r.cfg.ProgressTopic, Key: []byte(src.progressKey(r.cfg.RelayID)), Value: v}
	if _, err := commitFence(ctx, cl, rec); err != nil {
		return fmt.Errorf("outbox: record the drop of slot %s in progress topic %s (nothing dropped): %w", slot, r.cfg.ProgressTopic, err)
	}
	return nil
}

// checkOtherRelays refuses a table that another change-data-capture
// relay id streams: each relay id has its own slot, every slot streams
// every insert, so each relay would publish every event. Several
// processes with one relay id are the way to fail over. Earlier versions
// named their publication TABLE_cdc; one of those counts too, as its
// slot still streams the table.
func checkOtherRelays(ctx context.Context, conn *pgconn.PgConn, pub string, src cdcSource) error {
	row, err := queryRow(ctx, conn, `SELECT coalesce(string_agg(pubname, ', ' ORDER BY pubname), '') FROM pg_publication_tables
		WHERE schemaname = `+quoteLiteral(src.schema)+` AND tablename = `+quoteLiteral(src.table)+`
		AND pubname <> `+quoteLiteral(pub)+`
		AND (pubname ~ '^weir_[a-z0-9_]*_[0-9a-f]{12}$' OR pubname = `+quoteLiteral(strings.ToLower(src.table)+"_cdc")+`)`)
	if err != nil {
		return fmt.Errorf("outbox: look up publications of %s: %w", src.qualified(), err)
	}
	if row != nil && row[0] != "" {
		return fmt.Errorf("outbox: table %s is streamed by another change-data-capture relay id (publication %s): "+
			"both would publish every event; run one relay id per table (several processes with one relay id fail over), "+
			"or drop the other relay's slot and publication (weir outbox drop-slot --relay-id ID) if it will not run again; "+
			"%s_cdc is an earlier version's publication: once its relay has published everything, drop it (DROP PUBLICATION) "+
			"and that relay's slot (pg_drop_replication_slot, weir_outbox_cdc_...)",
			src.qualified(), row[0], strings.ToLower(src.table))
	}
	return nil
}

// publicationNarrowedDown is the error of a relay that found, at its
// start, its publication no longer streaming every insert of its table
// whole (wrong). PostgreSQL decodes each change by the publication as of
// that change, so the rows committed while it was so are missing from
// the stream for good, and the relay cannot tell when the change was
// made: after the last position it recorded (last), before its start
// (to).
func publicationNarrowedDown(src cdcSource, pub string, last *cdcProgress, to pglogrepl.LSN, wrong publicationWrong) error {
	since := lastSeen(last)
	return fmt.Errorf("%w: publication %s changed while the relay was down (%w); rows inserted into %s while it was so are "+
		"not streamed as the relay needs them. Every event the slot streamed up to %s is published; rows committed after %s "+
		"(the relay's last recorded position) whose event UUIDs are not in the topics were kept out of the stream, as is "+
		"a row inserted before %s in a transaction that commits after it (the relay logs each one it meets): publish "+
		"them some other way, then %s and start the relay again: it publishes the rows inserted from then on",
		ErrSourceChanged, pub, wrong.finding, src.qualified(), to, since, to, publicationRemedy(pub, src, wrong.allTables))
}
