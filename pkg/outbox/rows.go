package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrFenced is returned by Run when a newer incarnation of the same relay
// id has started (in the database or at the Kafka transaction
// coordinator): this one must stop, and the newer one carries on.
var ErrFenced = errors.New("outbox: relay fenced by a newer incarnation with the same relay id")

// claimed is one row a relay claimed.
type claimed struct {
	id      int64
	uuid    string // event_uuid, text form
	topic   string
	key     []byte
	payload []byte
	headers map[string]string
}

// batch is the rows a relay claimed together; they are published in one
// Kafka transaction.
type batch struct {
	number int64
	events []claimed
}

// ids returns the batch's event ids in order.
func (b *batch) ids() []int64 {
	ids := make([]int64, len(b.events))
	for i, e := range b.events {
		ids[i] = e.id
	}
	return ids
}

// store is the relay's access to the outbox tables.
type store struct {
	pool    *pgxpool.Pool
	n       names
	relayID string
}

// startIncarnation registers a new incarnation of the relay id and returns
// its number and the relay's token. From its commit on, older
// incarnations can no longer claim rows or reconcile (they check the
// number under a row lock).
//
// The token is drawn when the relay id is first seen in this database and
// kept across incarnations. Progress records carry it, so that a relay
// never trusts a record written against another database (one restored
// from a backup, or recreated, whose batch numbers and event ids start
// over) to say which of its rows were published.
func (s *store) startIncarnation(ctx context.Context) (inc int64, token string, err error) {
	err = s.pool.QueryRow(ctx,
		`INSERT INTO `+s.n.relays+` (relay_id, incarnation) VALUES ($1, 1)
		 ON CONFLICT (relay_id) DO UPDATE SET incarnation = `+s.n.relays+`.incarnation + 1, started_at = now()
		 RETURNING incarnation, token`, s.relayID).Scan(&inc, &token)
	if err != nil {
		return 0, "", fmt.Errorf("outbox: register relay %q: %w", s.relayID, err)
	}
	return inc, token, nil
}

// checkColumns fails with a clear error if the table predates a column
// the relay reads (event_uuid, added by Migrate).
func (s *store) checkColumns(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT event_uuid FROM `+s.n.table+` LIMIT 0`)
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42703" { // undefined_column
		return fmt.Errorf("outbox: table %s has no event_uuid column: run weir outbox migrate (it adds the column)", s.n.table)
	}
	if err != nil {
		return fmt.Errorf("outbox: read table %s: %w", s.n.table, err)
	}
	return nil
}

// checkNoCDCRelay fails with a clear error if a change-data-capture
// relay's publication covers the table (its relay running or stopped):
// that relay leaves the rows it publishes pending, so the polling relay
// would publish them again. The publications are recognised by the
// names cdcNames gives them (and an earlier version's TABLE_cdc).
func (s *store) checkNoCDCRelay(ctx context.Context) error {
	var pubs string
	err := s.pool.QueryRow(ctx, `SELECT coalesce(string_agg(pubname, ', ' ORDER BY pubname), '') FROM pg_publication_tables
		WHERE format('%I.%I', schemaname, tablename)::regclass = to_regclass($1)
		AND (pubname ~ '^weir_[a-z0-9_]*_[0-9a-f]{12}$' OR pubname = lower(tablename) || '_cdc')`, s.n.table).Scan(&pubs)
	if err != nil {
		return fmt.Errorf("outbox: look up publications of %s: %w", s.n.table, err)
	}
	if pubs != "" {
		return modeConflict{fmt.Errorf("outbox: table %s is streamed by a change-data-capture relay (publication %s), which leaves the rows it "+
			"publishes pending: the polling relay would publish them again. To switch to polling, stop that relay, then run "+
			"weir outbox drop-slot --relay-id ID --table %s --mark-published (CDCRelay.DropSlot, then CDCRelay.MarkPublished): "+
			"it drops the slot and publication and marks sent exactly the pending rows whose event UUIDs are in their topics; "+
			"the polling relay publishes the rest. No id bound will do: that relay publishes in commit order, not id order",
			s.n.table, pubs, s.n.table)}
	}
	return nil
}

// currentIncarnation returns the relay id's latest incarnation.
func (s *store) currentIncarnation(ctx context.Context) (int64, error) {
	var cur int64
	err := s.pool.QueryRow(ctx, `SELECT incarnation FROM `+s.n.relays+` WHERE relay_id = $1`, s.relayID).Scan(&cur)
	return cur, err
}

// checkIncarnation locks the relay's row (FOR SHARE or FOR UPDATE) in tx
// and fails with ErrFenced if inc is no longer the current incarnation.
// The lock orders the caller's statements against startIncarnation of a
// newer process: either they commit first, and the newer process's
// reconciliation sees their effect, or they see the newer number.
func (s *store) checkIncarnation(ctx context.Context, tx pgx.Tx, inc int64, lock string) error {
	var cur int64
	err := tx.QueryRow(ctx, `SELECT incarnation FROM `+s.n.relays+` WHERE relay_id = $1 `+lock, s.relayID).Scan(&cur)
	if err != nil {
		return fmt.Errorf("outbox: read incarnation of relay %q: %w", s.relayID, err)
	}
	if cur != inc {
		return fmt.Errorf("%w (incarnation %d, current %d)", ErrFenced, inc, cur)
	}
	return nil
}

// reconcile settles the rows a previous incarnation left claimed: those of
// the batch the progress topic names as committed become sent, all others
// go back to pending. It returns how many rows it marked sent and how
// many it released, and the relay's token from now on.
//
// The progress record is trusted only if this database has seen it
// written: a database restored from a backup keeps the token but forgets
// the incarnations and batch numbers issued since, and issues them (and
// the event ids) again, so a record from before the restore could name a
// new batch and mark events sent that were never published. A record
// naming an incarnation or a batch number the database has not issued
// yet betrays the restore; the relay then draws a new token, which no
// record carries, and releases every row it had claimed.
func (s *store) reconcile(ctx context.Context, inc int64, token string, last *progress) (reconciled, error) {
	res := reconciled{token: token}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.checkIncarnation(ctx, tx, inc, "FOR UPDATE"); err != nil {
			return err
		}
		if last != nil {
			var issued int64
			err := tx.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM `+s.n.batchSeq).Scan(&issued)
			if err != nil {
				return fmt.Errorf("outbox: read batch sequence: %w", err)
			}
			if last.Incarnation >= inc || last.Batch > issued {
				err := tx.QueryRow(ctx, `UPDATE `+s.n.relays+` SET token = gen_random_uuid()::text WHERE relay_id = $1 RETURNING token`,
					s.relayID).Scan(&res.token)
				if err != nil {
					return fmt.Errorf("outbox: draw a new token: %w", err)
				}
				res.restored = fmt.Sprintf("progress names incarnation %d batch %d; database at incarnation %d, batch %d",
					last.Incarnation, last.Batch, inc, issued)
				last = nil
			}
		}
		if last != nil {
			tag, err := tx.Exec(ctx,
				`UPDATE `+s.n.table+` SET state = 'sent', sent_at = now()
				 WHERE relay_id = $1 AND batch = $2 AND state = 'claimed' AND id = ANY($3)`,
				s.relayID, last.Batch, last.IDs)
			if err != nil {
				return fmt.Errorf("outbox: mark committed batch %d sent: %w", last.Batch, err)
			}
			res.sent = tag.RowsAffected()
		}
		tag, err := tx.Exec(ctx,
			`UPDATE `+s.n.table+` SET state = 'pending', relay_id = NULL, batch = NULL
			 WHERE relay_id = $1 AND state = 'claimed'`, s.relayID)
		if err != nil {
			return fmt.Errorf("outbox: release uncommitted rows: %w", err)
		}
		res.released = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return reconciled{}, err
	}
	return res, nil
}

// reconciled is what reconcile did.
type reconciled struct {
	sent, released int64  // rows marked sent, rows released
	token          string // the relay's token from now on
	restored       string // why the database looks restored from a backup; empty if not
}

// claim marks batch done sent, if not nil, and takes up to n pending
// rows, oldest first, for a new batch, in one transaction (marking a batch
// and claiming the next are one round of statements, not two). Rows other
// relays hold locked are skipped, so relays never wait for each other.
// The claim commits before anything is published: a crash after it leaves
// the rows claimed, for the next incarnation to reconcile.
func (s *store) claim(ctx context.Context, inc int64, done *batch, n int) (*batch, error) {
	b := &batch{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.checkIncarnation(ctx, tx, inc, "FOR SHARE"); err != nil {
			return err
		}
		if done != nil {
			if err := s.markSentTx(ctx, tx, done); err != nil {
				return err
			}
		}
		if n == 0 {
			return nil
		}
		rows, err := tx.Query(ctx,
			`WITH c AS (
				SELECT id FROM `+s.n.table+` WHERE state = 'pending' ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
			 )
			 UPDATE `+s.n.table+` t SET state = 'claimed', relay_id = $1, batch = (SELECT nextval('`+s.n.batchSeq+`'))
			 FROM c WHERE t.id = c.id
			 RETURNING t.batch, t.id, t.event_uuid::text, t.topic, t.key, t.payload, t.headers`, s.relayID, n)
		if err != nil {
			return fmt.Errorf("outbox: claim: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e claimed
			if err := rows.Scan(&b.number, &e.id, &e.uuid, &e.topic, &e.key, &e.payload, &e.headers); err != nil {
				return fmt.Errorf("outbox: claim: %w", err)
			}
			b.events = append(b.events, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	// RETURNING follows no order; publish in id order, which is the
	// order the events were written in for causally related writes.
	slices.SortFunc(b.events, func(a, c claimed) int { return cmp.Compare(a.id, c.id) })
	return b, nil
}

// markSentTx records that batch b is in Kafka. It is only called after
// the batch's Kafka transaction committed, so it is true whoever runs it;
// the incarnation check of the caller makes a fenced relay stop rather
// than race the reconciliation of its successor (which marks the same
// rows).
func (s *store) markSentTx(ctx context.Context, tx pgx.Tx, b *batch) error {
	tag, err := tx.Exec(ctx,
		`UPDATE `+s.n.table+` SET state = 'sent', sent_at = now()
		 WHERE relay_id = $1 AND batch = $2 AND state = 'claimed'`, s.relayID, b.number)
	if err != nil {
		return fmt.Errorf("outbox: mark batch %d sent: %w", b.number, err)
	}
	if got := tag.RowsAffected(); got != int64(len(b.events)) {
		// Only this incarnation changes its claimed rows, so a
		// mismatch means someone edited the table by hand.
		return fmt.Errorf("outbox: batch %d: marked %d rows sent, claimed %d", b.number, got, len(b.events))
	}
	return nil
}
