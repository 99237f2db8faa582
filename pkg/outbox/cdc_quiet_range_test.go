package outbox

import (
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// TestCDCResumeBeforeAHeartbeatAfterASkippedTransactionIsNotRefused
// restarts PostgreSQL under a change-data-capture relay whose last
// heartbeat follows a transaction skipped by a skip record, and resumes
// the relay on the same database and history.
//
// A transaction inserts an outbox row the relay cannot decode (headers
// that are not a string map); the relay retries it and names the skip
// command (weir outbox skip --mode cdc --lsn), which the operator runs.
// The relay then leaves the transaction out without recording it (no
// event of it was decoded, so no progress record names it), goes idle,
// and records and confirms a heartbeat past it. The server is then
// restarted (a clean, fast shutdown): PostgreSQL 15 does not save a
// slot's confirmed position when only that moved, so the slot comes back
// confirmed before the heartbeat and streams the skipped transaction
// again.
//
// The package doc says a slot confirmed before the heartbeat streams
// again what came before it and "none of that may hold an outbox event",
// else the relay stops with ErrSourceChanged, meant for a database
// restored to an earlier point. Here the history is the relay's own: the
// skipped transaction holds an outbox insert because the operator told
// the relay to skip it. The correct outcome: the relay resumes (the
// skip record still applies) and publishes the event written afterwards,
// once. What happens instead: it refuses with ErrSourceChanged, telling
// the operator to retire the relay id.
func TestCDCResumeBeforeAHeartbeatAfterASkippedTransactionIsNotRefused(t *testing.T) {
	srv := startPostgres(t)
	e := newEnvAt(t, srv, "", "orders-quiet")
	ctx := testCtx(t)
	e.cdcSetup("q1")
	first := e.placeOrdersInTxns(1, 1)

	// An event the relay cannot decode: it names the skip command.
	if _, err := e.pool.Exec(ctx, `INSERT INTO weir_outbox (topic, payload, headers) VALUES ($1, 'x', '{"n": 1}')`, e.topic); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cfg := e.config("q1", 0)
	cfg.HeartbeatInterval = 100 * time.Millisecond
	cfg.Logger = logs.logger()
	_, stop := e.startCDCWith(cfg)
	e.waitPublishedWithin(first, 30*time.Second)
	commit := logs.waitFor(t, regexp.MustCompile(`--lsn ([0-9A-F]+/[0-9A-F]+)`))[1]
	if err := e.cdcRelay("q1").SkipTransaction(ctx, commit, "undecodable headers"); err != nil {
		t.Fatal(err)
	}
	skipped, err := pglogrepl.ParseLSN(commit)
	if err != nil {
		t.Fatal(err)
	}
	// Idle while another table writes: a heartbeat past the skipped
	// transaction is recorded and confirmed.
	if _, err := e.pool.Exec(ctx, `INSERT INTO orders (customer) VALUES ('other work')`); err != nil {
		t.Fatal(err)
	}
	hb := e.waitSlotConfirmedPast("q1", skipped, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	e.pool.Close()
	srv.Halt()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	e = attachEnv(t, e, srv)
	back, _ := e.slotConfirmed("q1")
	t.Logf("transaction skipped at %s, heartbeat confirmed at %s, slot after the server's restart at %s", skipped, hb, back)

	later := e.placeOrdersInTxns(1, 1)
	if err := e.publishedOrRefused(e.cdcRelay("q1"), later, 20*time.Second); err != nil {
		t.Fatalf("relay resuming its own history after a server restart refused: %v", err)
	}
	e.assertExactlyOnce(append(first, later...))
}
