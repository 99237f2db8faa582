package outbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestModeMarkOfAKilledPollingRelayDoesNotLockTheTableOut kills a polling
// relay process (SIGKILL, mid-batch) and then starts a change-data-capture
// relay on the table: the dead relay's mark must not make it refuse, and
// every event written after its start is published once.
func TestModeMarkOfAKilledPollingRelayDoesNotLockTheTableOut(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.placeOrders(2)
	c := e.startChild("p1", 1, crashBeforePublish, 1) // no Kafka transaction left open
	if killed, err := c.wait(ctx); err != nil || !killed {
		t.Fatalf("polling relay child: killed %v, %v", killed, err)
	}
	// PostgreSQL ends the dead process's sessions once it sees their
	// connections closed: then no polling mark is left.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var held int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1`, pollModeTag).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed polling relay's mark is still held after 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.cdcSetup("c1") // refuses while a polling relay holds its mark
	ids := e.placeOrdersInTxns(3, 1)
	_, stop := e.startCDC("c1")
	defer stop()
	e.waitPublishedWithin(ids, 30*time.Second)
}

// TestPollingRelayRefusesATableAChangeDataCaptureRelayIsStartingOn holds
// the change-data-capture mark on the table, as a relay does from its
// start, before its publication exists; a polling relay started then
// must refuse, naming that relay, and start once the mark is gone.
func TestPollingRelayRefusesATableAChangeDataCaptureRelayIsStartingOn(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	r := e.cdcRelay("c1")
	conn, err := r.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src, err := r.identify(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := markCDC(ctx, conn, src, "c1"); err != nil {
		t.Fatal(err)
	}
	ids := e.placeOrders(2)
	p := e.startRelay(e.config("p1", 0))
	select {
	case err := <-p.done:
		p.done <- err // for stop
		if err == nil || !strings.Contains(err.Error(), "change-data-capture relay") || !strings.Contains(err.Error(), "c1") {
			t.Fatalf("polling relay stopped with %v; want a refusal naming the change-data-capture relay c1", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("polling relay runs beside a change-data-capture relay's mark")
	}
	conn.Close(context.Background()) // the relay's session ends
	p = e.startRelay(e.config("p1", 0))
	e.waitPublishedWithin(ids, 30*time.Second)
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
}
