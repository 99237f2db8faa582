package dedup

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The tables a PGStore creates when PGOptions names none.
const (
	DefaultPGKeysTable    = "weir_dedup_keys"
	DefaultPGOffsetsTable = "weir_dedup_offsets"
)

// schemaLockID is the advisory lock NewPGStore holds while it creates
// tables, so that stores starting together in several processes do not
// race in CREATE TABLE IF NOT EXISTS (which can fail with a unique
// violation on the catalog when two sessions run it at once).
const schemaLockID int64 = 0x77656972_64647570 // "weirddup"

// tableName is what PGOptions accepts as a table: an unquoted SQL
// identifier, optionally qualified by a schema. Anything else is refused
// rather than quoted, so the name in the database is the one the user
// typed.
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// PGOptions configures a PGStore.
type PGOptions struct {
	// Table holds the processed keys; DefaultPGKeysTable when empty. It
	// may be qualified by a schema ("billing.dedup_keys"). Keys carry no
	// consumer group: consumer groups that each apply the same events
	// need a table each, or the second skips what the first recorded.
	Table string

	// OffsetsTable holds the consumer offsets ProcessRecordTx stores;
	// DefaultPGOffsetsTable when empty.
	OffsetsTable string

	// TTL is how long a processed key is kept; Purge deletes keys older
	// than that. Zero keeps keys until they are deleted by hand. Stored
	// offsets never expire.
	TTL time.Duration

	// Now, when set, gives the time a key is recorded at and Purge's
	// now is used as given: for tests that move time. When nil (the
	// default) the database's clock stamps keys (now()) and sets Purge's
	// cutoff, so that hosts whose clocks disagree by more than the TTL
	// neither write keys that are purged at once nor purge fresh ones.
	Now func() time.Time
}

// PGStore is the PostgreSQL Store. Its ProcessTx and ProcessRecordTx run
// the handler inside the database transaction that records the key (and,
// for ProcessRecordTx, the consumer's next offset), so the handler's own
// writes, the key and the offset commit together or not at all. Any
// number of processes may share the tables.
type PGStore struct {
	pool    *pgxpool.Pool
	opts    PGOptions
	keys    string // sanitized keys table
	offsets string // sanitized offsets table
	latch   keyLatch
}

var _ Store = (*PGStore)(nil)

// NewPGStore returns a store keeping its keys and offsets in pool's
// database, creating its tables if they are missing. The pool stays the
// caller's: the store does not close it.
func NewPGStore(ctx context.Context, pool *pgxpool.Pool, opts PGOptions) (*PGStore, error) {
	if pool == nil {
		return nil, errors.New("dedup: nil pool")
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("dedup: negative TTL %v", opts.TTL)
	}
	if opts.Table == "" {
		opts.Table = DefaultPGKeysTable
	}
	if opts.OffsetsTable == "" {
		opts.OffsetsTable = DefaultPGOffsetsTable
	}
	for _, name := range []string{opts.Table, opts.OffsetsTable} {
		if !tableName.MatchString(name) {
			return nil, fmt.Errorf("dedup: table name %q is not a plain SQL identifier (letters, digits, _; optionally schema.table)", name)
		}
	}
	if strings.EqualFold(opts.Table, opts.OffsetsTable) {
		return nil, fmt.Errorf("dedup: keys and offsets share the table %q", opts.Table)
	}
	s := &PGStore{pool: pool, opts: opts, keys: sanitize(opts.Table), offsets: sanitize(opts.OffsetsTable)}
	if err := s.createTables(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// sanitize quotes a validated table name. Unquoted identifiers fold to
// lower case in PostgreSQL, so the quoted form is folded too.
func sanitize(name string) string {
	return pgx.Identifier(strings.Split(strings.ToLower(name), ".")).Sanitize()
}

// createTables creates the keys and offsets tables and the index Purge
// scans by age.
func (s *PGStore) createTables(ctx context.Context) error {
	base := strings.ToLower(s.opts.Table)
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		base = base[i+1:]
	}
	// The key is bytea: header values are arbitrary bytes, which a text
	// column would reject (NUL, invalid UTF-8).
	stmts := []string{
		`SELECT pg_advisory_xact_lock($1)`,
		`CREATE TABLE IF NOT EXISTS ` + s.keys + ` (
			key bytea PRIMARY KEY,
			processed_at timestamptz NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS ` + pgx.Identifier{base + "_processed_at"}.Sanitize() + ` ON ` + s.keys + ` (processed_at)`,
		`CREATE TABLE IF NOT EXISTS ` + s.offsets + ` (
			consumer_group text NOT NULL,
			topic text NOT NULL,
			partition integer NOT NULL,
			next_offset bigint NOT NULL,
			updated_at timestamptz NOT NULL,
			PRIMARY KEY (consumer_group, topic, partition)
		)`,
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i, q := range stmts {
			var args []any
			if i == 0 {
				args = []any{schemaLockID}
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dedup: create tables %s, %s: %w", s.opts.Table, s.opts.OffsetsTable, err)
	}
	return nil
}

// Pool is the pool the store uses, for reading the effects handlers
// wrote through ProcessTx.
func (s *PGStore) Pool() *pgxpool.Pool { return s.pool }

// Seen reports whether key is recorded as processed. A key whose first
// processing is still in an open transaction is not seen yet.
func (s *PGStore) Seen(key string) (bool, error) {
	return s.SeenContext(context.Background(), key)
}

// SeenContext is Seen bounded by ctx.
func (s *PGStore) SeenContext(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	var seen bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.keys+` WHERE key = $1)`, []byte(key)).Scan(&seen)
	if err != nil {
		return false, fmt.Errorf("dedup: seen %q: %w", key, err)
	}
	return seen, nil
}

// MarkProcessed records key as processed now, restarting its TTL if it
// was recorded before.
func (s *PGStore) MarkProcessed(key string) error {
	return s.MarkProcessedContext(context.Background(), key)
}

// MarkProcessedContext is MarkProcessed bounded by ctx.
func (s *PGStore) MarkProcessedContext(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.keys+` (key, processed_at) VALUES ($1, coalesce($2::timestamptz, now()))
		ON CONFLICT (key) DO UPDATE SET processed_at = EXCLUDED.processed_at`, []byte(key), s.stamp())
	if err != nil {
		return fmt.Errorf("dedup: mark %q: %w", key, err)
	}
	return nil
}

// Process runs fn unless key is recorded, and records key once fn returns
// nil. fn's effect lives outside the database, so it and the record are
// separate: a crash after fn's effect and before the commit runs fn again
// on the next delivery (at-least-once). While fn runs, the store holds a
// transaction open with the key's row locked, so a call with the same key
// in another process waits for it and then skips (or, if fn failed,
// runs). Use ProcessTx when the effect is a write to this database.
func (s *PGStore) Process(key string, fn func() error) (ran bool, err error) {
	if fn == nil {
		return false, errNilHandler
	}
	return s.ProcessTx(context.Background(), key, func(pgx.Tx) error { return fn() })
}

// ProcessTx runs fn inside a database transaction unless key is recorded,
// and records key in that same transaction. fn writes its effect through
// tx; if fn returns an error, or the commit fails, the transaction rolls
// back and neither the effect nor the key is stored. Effect and key commit
// atomically, so each key's effect is applied exactly once, across
// crashes, into this database.
//
// The key is inserted before fn runs. A concurrent call with the same key,
// in this process or another, blocks on that row until the first
// transaction ends, then skips if it committed or runs fn if it rolled
// back: two calls never both apply a key's effect.
func (s *PGStore) ProcessTx(ctx context.Context, key string, fn func(tx pgx.Tx) error) (ran bool, err error) {
	if fn == nil {
		return false, errNilHandler
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	err = s.inTx(ctx, key, func(tx pgx.Tx, fresh bool) error {
		if !fresh {
			return nil
		}
		ran = true
		return fn(tx)
	})
	return ran, err
}

// inTx runs body in a transaction that has inserted key; fresh reports
// whether the insert created it (false: the key was already recorded).
// The transaction commits if body returns nil.
func (s *PGStore) inTx(ctx context.Context, key string, body func(tx pgx.Tx, fresh bool) error) error {
	release, err := s.latch.acquire(ctx, key)
	if err != nil {
		return err
	}
	defer release()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("dedup: begin: %w", err)
	}
	// Rollback after a successful commit is a no-op.
	defer tx.Rollback(context.WithoutCancel(ctx))
	tag, err := tx.Exec(ctx, `INSERT INTO `+s.keys+` (key, processed_at) VALUES ($1, coalesce($2::timestamptz, now())) ON CONFLICT (key) DO NOTHING`,
		[]byte(key), s.stamp())
	if err != nil {
		return fmt.Errorf("dedup: record %q: %w", key, err)
	}
	if err := body(tx, tag.RowsAffected() == 1); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("dedup: commit %q: %w", key, err)
	}
	return nil
}

// stamp is the time to record a key at: nil means the database's clock.
func (s *PGStore) stamp() any {
	if s.opts.Now == nil {
		return nil
	}
	return s.opts.Now()
}

// Purge deletes the keys recorded before now minus the TTL and returns how
// many it deleted; now is the database's clock (the argument is ignored)
// unless PGOptions.Now is set. A duplicate of a purged key is processed
// again. With no TTL it deletes nothing. It deletes in batches, each its own
// transaction, so a large purge holds no long locks.
func (s *PGStore) Purge(ctx context.Context, now time.Time) (int, error) {
	if s.opts.TTL == 0 {
		return 0, nil
	}
	// The cutoff is the database's now() minus the TTL unless a clock
	// was given (see PGOptions.Now).
	var cutoff any
	if s.opts.Now != nil {
		cutoff = now.Add(-s.opts.TTL)
	}
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.keys+` WHERE key IN (
			SELECT key FROM `+s.keys+` WHERE processed_at < coalesce($1::timestamptz, now() - make_interval(secs => $3))
			LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff, purgeBatch, s.opts.TTL.Seconds())
		if err != nil {
			return total, fmt.Errorf("dedup: purge: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < purgeBatch {
			return total, nil
		}
	}
}
