package outbox

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"errors"
	"strings"
	"testing"
	"time"
)

// TestCDCDrainOfATableDroppedBeforeAnythingWasPublishedSurvivesACrash
// creates a change-data-capture relay's slot (no progress recorded yet),
// commits three events in three transactions, which the slot holds, then
// drops the outbox table and creates it again. The relay's start finds
// its publication empty and drains what the slot holds of the old table,
// by name since no progress record names its oid. It is killed (SIGKILL)
// right after the first drained transaction is committed in Kafka. The
// package doc: the drain publishes "what the slot still holds of the old
// table" and stops with ErrSourceChanged whose remedy (drop-slot, polling
// relay) publishes the rest; nothing is published twice "across relay
// crashes at any point".
//
// The correct outcome: the restarted relay publishes the two other held
// events, each once, and stops with ErrSourceChanged saying the table
// was dropped (remedy drop-slot). What happens instead: the first drained
// transaction's progress record names the new table's oid, so the
// restarted relay takes the table for one taken out of its publication
// and drains by the new table's oid; the recorded transaction, streamed
// again, then shows none of its (old table's) events, and the relay
// stops saying the database was restored or failed over. The two other
// held events, whose table is dropped, are never published by anyone.
func TestCDCDrainOfATableDroppedBeforeAnythingWasPublishedSurvivesACrash(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("d1")
	held := e.placeOrdersInTxns(3, 1)
	if _, err := e.pool.Exec(ctx, `DROP TABLE weir_outbox`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, e.pool); err != nil {
		t.Fatal(err)
	}

	c := e.startCDCChild("d1", crashCDCBeforeAck, 1)
	killed, err := c.wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !killed {
		t.Fatalf("draining relay exited with %v, not killed after its first Kafka commit; stdout %q", c.cmd.ProcessState, c.output())
	}
	if seen := e.readSeen(); seen[held[0]] != 1 {
		t.Fatalf("after the crash the first held event is in the topic %d times, want 1", seen[held[0]])
	}

	runErr := runUntilRefused(t, e.cdcRelay("d1"), 30*time.Second)
	t.Logf("restarted relay stopped: %v", runErr)
	seen := e.readSeen()
	for _, id := range held {
		if seen[id] != 1 {
			t.Errorf("held event %d published %d times; want exactly once", id, seen[id])
		}
	}
	if !errors.Is(runErr, ErrSourceChanged) || !strings.Contains(runErr.Error(), "drop-slot") || strings.Contains(runErr.Error(), "taken out of publication") {
		t.Errorf("restarted relay stopped with %v; want ErrSourceChanged saying the table was dropped (remedy drop-slot)", runErr)
	}
}

// readSeen returns how often each event id is in the topic (read_committed).
func (e *env) readSeen() map[int64]int {
	e.t.Helper()
	return idsOf(e.readTopic(kgo.ReadCommitted()))
}
