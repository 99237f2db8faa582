package outbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCDCTableMovedAsideBeforeAnythingWasPublishedIsDrained creates a
// change-data-capture relay's publication and slot (as its first start
// does) and commits events to the outbox table, which the slot holds;
// before the relay has published anything (no progress record names the
// table's oid), the table is moved aside (ALTER TABLE ... SET SCHEMA, the
// first step of a copy-and-swap) and the outbox table is created again.
//
// The package doc: every outbox row committed after the slot exists is
// published, or the relay stops with an error that says what to do; a
// table "dropped, or moved aside, and created again" is checked at
// start, and the relay "publishes what the slot still holds of the old
// table ... and stops with ErrSourceChanged" (by name when no progress
// record names its oid, as it does for a dropped table).
//
// The correct outcome: the held events are published once and the
// relay stops with ErrSourceChanged naming drop-slot. If it instead
// stops with another error, following that error's remedy must still
// publish them: the test follows it (drop the publication and start the
// relay again) and requires the held events published.
func TestCDCTableMovedAsideBeforeAnythingWasPublishedIsDrained(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("u1")
	held := e.placeOrdersInTxns(3, 1) // committed after the slot exists

	for _, q := range []string{`CREATE SCHEMA outbox_archive`, `ALTER TABLE weir_outbox SET SCHEMA outbox_archive`} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := Migrate(ctx, e.pool); err != nil {
		t.Fatal(err)
	}

	runErr := runUntilRefused(t, e.cdcRelay("u1"), 30*time.Second)
	t.Logf("relay stopped: %v", runErr)
	seen := idsOf(e.readTopic(kgo.ReadCommitted()))
	drained := true
	for _, id := range held {
		drained = drained && seen[id] == 1
	}
	if drained && errors.Is(runErr, ErrSourceChanged) && strings.Contains(runErr.Error(), "drop-slot") {
		return
	}
	t.Errorf("held events not drained (published: %v) or relay stopped without ErrSourceChanged naming drop-slot: %v", seen, runErr)

	// Follow the remedy the error gives: drop the publication; the relay
	// creates it again.
	if strings.Contains(runErr.Error(), "DROP PUBLICATION") {
		_, pub := e.cdcNames(e.config("u1", 0))
		if _, err := e.pool.Exec(ctx, `DROP PUBLICATION `+pub); err != nil {
			t.Fatal(err)
		}
		after := e.publishedOrRefusedSoft(e.cdcRelay("u1"), held, 20*time.Second)
		t.Logf("after the remedy: %v", after)
	}
	seen = idsOf(e.readTopic(kgo.ReadCommitted()))
	for _, id := range held {
		if seen[id] != 1 {
			t.Errorf("event %d, committed after the slot existed, published %d times (want 1) after the relay's stop and its remedy", id, seen[id])
		}
	}
}

// publishedOrRefusedSoft is publishedOrRefused that, when the relay runs
// on without publishing ids, says so instead of failing the test.
func (e *env) publishedOrRefusedSoft(r *CDCRelay, ids []int64, d time.Duration) error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return errors.New("relay ran on without publishing them")
			}
			return err
		case <-time.After(200 * time.Millisecond):
		}
		seen := idsOf(e.readTopic(kgo.ReadCommitted()))
		all := true
		for _, id := range ids {
			all = all && seen[id] > 0
		}
		if all {
			cancel()
			<-done
			return nil
		}
	}
}
