package outbox

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"
)

// TestCDCSecondTableRemovalKeepsTheFirstRemovalsRowsUnpublished takes the
// outbox table out of a running change-data-capture relay's publication
// under an application transaction that inserted an event before and
// commits after. The relay stops, recording where (X1): such a row is
// "not published by this relay ... publish some other way the rows
// committed since". The operator does so, puts the table back and starts
// the relay, which streams that transaction and leaves its row out, as
// it says. Before anything else is published, the table is taken out
// once more; the relay stops again, recording X2, and the operator puts
// the table back and starts it.
//
// The correct outcome: the event is in the topic once (published by the
// operator). The progress keeps one stop position, the last: a
// transaction streamed and left out under X1 but not confirmed to the
// slot (nothing was published after it) is streamed again and, committed
// before X2, published a second time.
func TestCDCSecondTableRemovalKeepsTheFirstRemovalsRowsUnpublished(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("u2", 0)
	cfg.HeartbeatInterval = time.Minute
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	run := func(c RelayConfig) chan error {
		r, err := NewCDCRelay(e.dsn, c)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		t.Cleanup(cancel)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		return done
	}
	stopped := func(done chan error) {
		t.Helper()
		err := <-done
		t.Logf("relay stopped: %v", err)
		if !errors.Is(err, ErrSourceChanged) {
			t.Fatalf("relay stopped with %v; want ErrSourceChanged for its table out of its publication", err)
		}
	}
	done := run(cfg)
	e.waitSeen(first, 30*time.Second)

	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	open, err := Write(ctx, tx, Event{Topic: e.topic, Key: []byte("k"), Payload: []byte("open")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` DROP TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	stopped(done)
	if err := tx.Commit(ctx); err != nil { // after X1
		t.Fatal(err)
	}
	// The remedy: the row committed since, published some other way;
	// the table back; the relay started.
	e.publishOtherwise(open)
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` ADD TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	c2 := cfg
	c2.Logger = logs.logger()
	done = run(c2)
	logs.waitFor(t, regexp.MustCompile(`outbox event not published: inserted before the relay stopped`))

	// Out again, before anything else is published.
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` DROP TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	stopped(done)
	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` ADD TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	later := e.placeOrdersInTxns(1, 1)
	if err := e.publishedOrRefusedSoft(e.cdcRelay("u2"), later, 20*time.Second); err != nil {
		t.Fatalf("after the remedy: %v", err)
	}
	seen := e.readSeen()
	for _, id := range append(append(first, open), later...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times; want exactly once", id, seen[id])
		}
	}
}
