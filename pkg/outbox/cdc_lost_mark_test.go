package outbox

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// TestCDCRelayRefusesATableAPollingRelayPublishesAfterItsMarkSessionEnds
// runs a polling relay on the table; the database session that holds its
// mode mark ends (terminated, as idle_session_timeout, a network cut seen
// by the server's keepalives, or an administrator does), while the relay
// itself runs on. A change-data-capture relay is then started on the
// table. The package doc: "a change-data-capture relay refuses a table a
// polling relay is publishing ... Each relay holds, while it runs, a mark
// of its mode on the table".
//
// The correct outcome: the change-data-capture relay refuses to start (or
// the polling relay stops), and each event is published once. What
// happens: the polling relay neither watches its mark nor takes it again,
// so the change-data-capture relay starts and both publish every event.
func TestCDCRelayRefusesATableAPollingRelayPublishesAfterItsMarkSessionEnds(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	p := e.startRelay(e.config("lm", 0))
	first := e.placeOrders(1)
	e.waitSeen(first, 30*time.Second)
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = `+strconv.FormatUint(pollModeTag, 10)+` AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d sessions held the polling mark; want 1", n)
	}

	cfg := e.config("lm", 0)
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, _, err := r.DropSlot(context.Background())
			if !slotInUse(err) || time.Now().After(deadline) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	time.Sleep(3 * time.Second) // the change-data-capture relay starts, or refuses
	select {
	case err := <-done:
		t.Logf("change-data-capture relay stopped: %v", err)
		return
	default:
	}
	select {
	case err := <-p.done:
		p.done <- err
		t.Logf("polling relay stopped: %v", err)
		return
	default:
	}
	more := e.placeOrders(2)
	e.waitSeen(more, 30*time.Second)
	time.Sleep(2 * time.Second)
	seen := e.readSeen()
	for _, id := range append(first, more...) {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times with a polling and a change-data-capture relay both running on the table; want once", id, seen[id])
		}
	}
}
