package outbox

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultTable is the outbox table Migrate and Write use.
const DefaultTable = "weir_outbox"

// Execer runs a statement. *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// The states of an outbox row. A row is written pending, claimed by one
// relay for one batch, and sent once the batch's Kafka transaction has
// committed. A claimed row goes back to pending only when its relay
// restarts and finds the batch was never committed.
const (
	StatePending = "pending"
	StateClaimed = "claimed"
	StateSent    = "sent"
)

// identRE is what a table name may be: an identifier, optionally
// qualified by a schema. Names are quoted when used, so this only keeps
// out what quoting cannot make sensible (empty parts, control characters).
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// names are the quoted SQL names of the objects behind one outbox table.
type names struct {
	table    string // the outbox rows
	relays   string // one row per relay id: its incarnation
	batchSeq string // batch numbers, unique across relays
	// unqualified names of the indexes (CREATE INDEX takes no schema)
	pendingIdx, claimedIdx string
}

// tableNames validates table and derives the names of the objects the
// package keeps next to it.
func tableNames(table string) (names, error) {
	if table == "" {
		table = DefaultTable
	}
	if !identRE.MatchString(table) {
		return names{}, fmt.Errorf("outbox: invalid table name %q: want an identifier, optionally schema-qualified (weir_outbox, app.outbox)", table)
	}
	parts := strings.Split(table, ".")
	base := parts[len(parts)-1]
	q := func(suffix string) string {
		p := append([]string(nil), parts...)
		p[len(p)-1] = base + suffix
		return pgx.Identifier(p).Sanitize()
	}
	return names{
		table:      q(""),
		relays:     q("_relays"),
		batchSeq:   q("_batch_seq"),
		pendingIdx: pgx.Identifier{base + "_pending"}.Sanitize(),
		claimedIdx: pgx.Identifier{base + "_claimed"}.Sanitize(),
	}, nil
}

// Migrate creates the outbox table (and anything else the relay needs) if
// missing. Idempotent.
func Migrate(ctx context.Context, db Execer) error {
	return MigrateTable(ctx, db, DefaultTable)
}

// MigrateTable is Migrate for an outbox table of another name. Next to the
// table it creates TABLE_relays (each relay id's incarnation and a random
// token naming this database's history of it), the
// sequence TABLE_batch_seq and two partial indexes.
func MigrateTable(ctx context.Context, db Execer, table string) error {
	n, err := tableNames(table)
	if err != nil {
		return err
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + n.table + ` (
			id         bigserial PRIMARY KEY,
			topic      text NOT NULL CHECK (topic <> ''),
			key        bytea,
			payload    bytea,
			headers    jsonb NOT NULL DEFAULT '{}',
			created_at timestamptz NOT NULL DEFAULT now(),
			state      text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'sent')),
			relay_id   text,
			batch      bigint,
			sent_at    timestamptz,
			event_uuid uuid NOT NULL DEFAULT gen_random_uuid()
		)`,
		// Tables created before the column: adding it draws a UUID for
		// every existing row (the table is rewritten once).
		`ALTER TABLE ` + n.table + ` ADD COLUMN IF NOT EXISTS event_uuid uuid NOT NULL DEFAULT gen_random_uuid()`,
		// The relay claims the oldest pending rows; sent rows, the bulk
		// of the table, stay out of this index.
		`CREATE INDEX IF NOT EXISTS ` + n.pendingIdx + ` ON ` + n.table + ` (id) WHERE state = 'pending'`,
		`CREATE INDEX IF NOT EXISTS ` + n.claimedIdx + ` ON ` + n.table + ` (relay_id, batch) WHERE state = 'claimed'`,
		`CREATE TABLE IF NOT EXISTS ` + n.relays + ` (
			relay_id    text PRIMARY KEY,
			incarnation bigint NOT NULL,
			token       text NOT NULL DEFAULT gen_random_uuid()::text,
			started_at  timestamptz NOT NULL DEFAULT now()
		)`,
		`CREATE SEQUENCE IF NOT EXISTS ` + n.batchSeq,
	}
	for _, s := range stmts {
		if _, err := db.Exec(ctx, s); err != nil {
			return fmt.Errorf("outbox: migrate %s: %w", table, err)
		}
	}
	return nil
}

// CheckTableName reports whether name can be an outbox table name: an
// identifier, optionally schema-qualified.
func CheckTableName(name string) error {
	_, err := tableNames(name)
	return err
}
