package outbox

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

// A database restored from a backup keeps the relay's token (it is in the
// backup) but forgets the batch numbers and event ids issued after the
// backup, and hands them out again. The progress topic still holds the
// last batch committed before the restore, under the same token. A relay
// that trusted it would mark a new batch with the same number and ids
// sent without publishing it: the new events would be lost.
func TestProgressFromBeforeARestoreIsNotTrusted(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	// The backup: the relay registered, the outbox empty.
	var token string
	if err := e.pool.QueryRow(ctx, `INSERT INTO weir_outbox_relays (relay_id, incarnation) VALUES ('r1', 1) RETURNING token`).Scan(&token); err != nil {
		t.Fatal(err)
	}
	old := e.placeOrders(5)
	r := e.startRelay(e.config("r1", 5))
	e.waitAllSent(len(old))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	var lastBatch int64
	if err := e.pool.QueryRow(ctx, `SELECT max(batch) FROM weir_outbox`).Scan(&lastBatch); err != nil {
		t.Fatal(err)
	}

	// The restore: rows, ids and batch numbers back to the backup; the
	// relays row (token and incarnation) as it was then.
	for _, q := range []string{
		`TRUNCATE weir_outbox RESTART IDENTITY`,
		`SELECT setval('weir_outbox_batch_seq', 1, false)`,
		`UPDATE weir_outbox_relays SET incarnation = 1 WHERE relay_id = 'r1'`,
	} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	// New events, on another topic so they cannot be mistaken for the
	// old ones, get the old ids; a relay claims them as batch 1 again and
	// dies before publishing.
	after := *e
	after.topic = "orders-after-restore"
	resp, err := kadm.NewClient(e.client()).CreateTopic(ctx, after.parts, 1, nil, after.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	ids := after.placeOrders(5)
	if !slices.Equal(ids, old) {
		t.Fatalf("new ids %v, want the restored sequence to reissue %v", ids, old)
	}
	c := after.startChild("r1", 5, crashBeforePublish, 1)
	if killed, err := c.wait(ctx); err != nil || !killed {
		t.Fatalf("child: killed %v, err %v", killed, err)
	}
	if crash := parseCrash(t, c.output()); crash.batch != lastBatch || !slices.Equal(crash.ids, old) {
		t.Fatalf("crashed holding batch %d %v, want batch %d %v as before the restore", crash.batch, crash.ids, lastBatch, old)
	}

	r = after.startRelay(after.config("r1", 5))
	after.waitAllSent(len(ids))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	after.assertExactlyOnce(ids)
}
