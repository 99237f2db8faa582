package outbox

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestCDCUnreadableRowInALaterPartCanBeSkipped commits one source
// transaction of three events and, last, a row whose headers are not
// strings (written by hand: {"attempt": 1}); a change-data-capture relay
// with a batch size of 2 publishes the transaction in parts, so the first
// two events reach Kafka before the relay meets the unreadable row. The
// package doc: such a row "in change-data-capture mode ... is reported
// with its source transaction's commit LSN, to be skipped by --lsn"; a
// skip by --lsn of a transaction with a part published "is refused, skip
// by id instead"; and "every other event is still published exactly
// once". The row cannot be fixed (the slot streams it as committed).
//
// The correct outcome: one of the documented skips takes effect and the
// relay goes on, publishing the transaction's third event and the next
// transaction's event. What the test checks: after trying both skips
// (the one refused is allowed to be), the later events are published.
func TestCDCUnreadableRowInALaterPartCanBeSkipped(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("b1", 2)
	e.cdcSetupWith(cfg)
	var ids []int64
	var bad int64
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		for i := 0; i < 3; i++ {
			id, err := Write(ctx, tx, Event{Topic: e.topic, Key: []byte("k"), Payload: []byte("p")})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return tx.QueryRow(ctx, `INSERT INTO weir_outbox (topic, payload, headers) VALUES ($1, 'x', '{"attempt": 1}') RETURNING id`, e.topic).Scan(&bad)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := e.startCDCWith(cfg)
	defer stop()
	e.waitSeen(ids[:2], 30*time.Second) // the first part

	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := r.identifyOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last, err := lastCDCProgress(ctx, r.cfg, src)
	if err != nil || last == nil || !last.Partial {
		t.Fatalf("last progress %+v, %v; want a part of the transaction", last, err)
	}
	errLSN := r.SkipTransaction(ctx, last.CommitLSN, "unreadable headers")
	errID := r.SkipEvent(ctx, bad, "unreadable headers")
	t.Logf("skip --lsn %s: %v; skip --id %d: %v", last.CommitLSN, errLSN, bad, errID)

	later := e.placeOrdersInTxns(1, 1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen := e.readSeen()
		if seen[ids[2]] == 1 && seen[later[0]] == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after both skips, events %d (same transaction) and %d (a later one) published %d and %d times; want once each: the relay is stuck on event %d for good",
				ids[2], later[0], seen[ids[2]], seen[later[0]], bad)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
