package outbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A table is published by polling relays or by one change-data-capture
// relay id, never both: the change-data-capture relay leaves the rows it
// publishes pending, which a polling relay would publish again, and its
// slot streams the inserts a polling relay publishes. Each relay, while
// it runs, holds a mark of its mode on the table: a session-level
// PostgreSQL advisory lock, taken shared (relays of one mode do not
// exclude each other) on a key made of the mode's tag and the table's
// oid. A relay takes its own mark first and then looks for the other
// mode's mark held by another session; of two relays starting together
// at least one sees the other's, so they never both run. A lock lives
// as long as its session: a relay that crashes, or whose host is lost,
// drops its mark once PostgreSQL notices the connection is gone (the
// keepalive settings below bound that), so no mark locks a table out
// for ever. A session can end while its relay runs on: the polling
// relay checks its mark before publishing each batch (pollingMark.held).
//
// The polling relay also refuses a table that a change-data-capture
// publication covers (checkNoCDCRelay), running or stopped; the mark is
// what lets the change-data-capture relay see a running polling relay,
// which leaves nothing in the catalogs.
const (
	pollModeTag = 0x57454950 // "WEIP"
	cdcModeTag  = 0x57454943 // "WEIC"
)

// markKeySQL is the advisory lock key of mode tag on the table whose oid
// is the SQL expression oidExpr.
func markKeySQL(tag uint32, oidExpr string) string {
	return "((" + strconv.FormatUint(uint64(tag), 10) + "::bigint << 32) | (" + oidExpr + ")::bigint)"
}

// markHoldersSQL lists, as one text, the other sessions that hold mode
// tag's mark on the table whose oid is oidExpr: what PostgreSQL shows of
// them (the application name the relays set, the process id, the client
// address).
func markHoldersSQL(tag uint32, oidExpr string) string {
	return `SELECT coalesce(string_agg(format('%s (pid %s%s)', coalesce(nullif(a.application_name, ''), 'unnamed session'), l.pid,
			coalesce(', from ' || host(a.client_addr), '')), '; ' ORDER BY l.pid), '')
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid = ` + strconv.FormatUint(uint64(tag), 10) + ` AND l.objid = (` + oidExpr + `) AND l.objsubid = 1`
}

// markKeepalives make the server notice a lost relay host within about
// a minute, and so drop its mark.
var markKeepalives = map[string]string{
	"tcp_keepalives_idle":     "30",
	"tcp_keepalives_interval": "10",
	"tcp_keepalives_count":    "3",
}

// withRelayName sets the application name (unless the connection string
// gives one) and keepalives of a relay's connection.
func withRelayName(params map[string]string, name string) {
	if params["application_name"] == "" {
		params["application_name"] = name
	}
	for k, v := range markKeepalives {
		if params[k] == "" {
			params[k] = v
		}
	}
}

// pollingMark is the mark a polling relay holds while it runs: a
// connection of its own, outside the pool, whose session holds the
// lock.
type pollingMark struct {
	conn  *pgx.Conn
	table string // the table, as given to to_regclass
}

// errMarkLost is held's finding: the session holding the polling mark
// ended (terminated by an administrator or idle_session_timeout, or cut
// off), so a change-data-capture relay may have started on the table
// since without seeing this relay.
var errMarkLost = errors.New("outbox: the polling relay's mark on its table is gone (its database session ended)")

// held checks, before the relay publishes a batch it claimed, that the
// session holding the mark still holds it. If it does, it has since the
// relay started, so no change-data-capture relay has started on the
// table since (it would have seen the mark and refused), and none could
// stream the claimed rows. If not, the session must start over: a new
// one takes the mark again and looks for the other mode's relays and
// publications before it claims anything, and the claimed rows are
// released by its reconciliation.
func (m *pollingMark) held(ctx context.Context) error {
	oid := "to_regclass(" + quoteLiteral(m.table) + ")::oid"
	var ok bool
	err := m.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'
		AND granted AND classid = `+strconv.FormatUint(uint64(pollModeTag), 10)+` AND objid = (`+oid+`) AND objsubid = 1)`).Scan(&ok)
	if err != nil {
		return fmt.Errorf("%w: %w", errMarkLost, err)
	}
	if !ok {
		return errMarkLost
	}
	return nil
}

// modeConflict is the error of a relay that finds the other mode's relay
// or publication on its table: starting over cannot mend it, so the
// relay stops.
type modeConflict struct{ err error }

func (e modeConflict) Error() string { return e.err.Error() }
func (e modeConflict) Unwrap() error { return e.err }

// markPolling takes the polling mark on the table, then fails with a
// clear error if a change-data-capture relay holds its mark there.
func (s *store) markPolling(ctx context.Context) (*pollingMark, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	withRelayName(cfg.RuntimeParams, "weir outbox relay "+s.relayID+" (poll)")
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("outbox: database: %w", err)
	}
	m := &pollingMark{conn: conn, table: s.n.table}
	oid := "to_regclass(" + quoteLiteral(s.n.table) + ")::oid"
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock_shared(`+markKeySQL(pollModeTag, oid)+`) WHERE `+oid+` IS NOT NULL`); err != nil {
		m.release(ctx)
		return nil, fmt.Errorf("outbox: mark table %s as published by polling: %w", s.n.table, err)
	}
	var holders string
	if err := conn.QueryRow(ctx, markHoldersSQL(cdcModeTag, oid)).Scan(&holders); err != nil {
		m.release(ctx)
		return nil, fmt.Errorf("outbox: look up relays of %s: %w", s.n.table, err)
	}
	if holders != "" {
		m.release(ctx)
		return nil, modeConflict{fmt.Errorf("outbox: table %s is being published by a change-data-capture relay (%s): the polling relay would "+
			"publish its rows again, since that relay leaves them pending. Run one mode per table (see weir outbox drop-slot to switch)",
			s.n.table, holders)}
	}
	return m, nil
}

// release drops the mark (closing its session drops the lock).
func (m *pollingMark) release(ctx context.Context) {
	if m != nil && m.conn != nil {
		m.conn.Close(context.WithoutCancel(ctx))
	}
}

// markCDC takes the change-data-capture mark on src's table on the
// relay's connection conn (held for the session: while it streams, and
// while it sets up its publication and slot), then fails with a clear
// error if a polling relay holds its mark there: the slot would stream,
// and the relay publish again, every event the polling relay publishes.
func markCDC(ctx context.Context, conn *pgconn.PgConn, src cdcSource, relayID string) error {
	oid := strconv.FormatUint(uint64(src.tableOID), 10)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock_shared(`+markKeySQL(cdcModeTag, oid)+`)`).ReadAll(); err != nil {
		return fmt.Errorf("outbox: mark table %s as published by change data capture: %w", src.qualified(), err)
	}
	row, err := queryRow(ctx, conn, markHoldersSQL(pollModeTag, oid))
	if err != nil {
		return fmt.Errorf("outbox: look up relays of %s: %w", src.qualified(), err)
	}
	if row != nil && row[0] != "" {
		return stopError{fmt.Errorf("outbox: table %s is being published by a polling relay (%s): a change-data-capture relay "+
			"beside it would publish every event again. Run one mode per table: to switch this table to change data capture, "+
			"let the polling relays publish what is pending, stop every one of them, then start relay %s; its first start "+
			"creates its slot, and rows committed before that are not its to publish",
			src.qualified(), row[0], relayID)}
	}
	return nil
}
