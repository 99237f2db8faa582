package outbox

import (
	"slices"
	"testing"
	"time"
)

// TestOnePollingRelayOrdersByCommitNotByID: an event whose transaction
// draws the lower id but commits later is published after the higher
// one (ids do not give the order), and an event written after another
// event's transaction committed is published after it, in its partition
// (the order the package promises).
func TestOnePollingRelayOrdersByCommitNotByID(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	slow, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx)
	lowID, err := Write(ctx, slow, Event{Topic: e.topic, Key: []byte("k"), Payload: []byte("slow")})
	if err != nil {
		t.Fatal(err)
	}
	highID := e.writeEvent(Event{Topic: e.topic, Key: []byte("k"), Payload: []byte("fast")})
	r := e.startRelay(e.config("r1", 10))
	e.waitPublishedWithin([]int64{highID}, 30*time.Second)
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	after := e.writeEvent(Event{Topic: e.topic, Key: []byte("k"), Payload: []byte("after")})
	e.waitAllSent(3)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	var order []int64
	for _, p := range e.assertExactlyOnce([]int64{lowID, highID, after}) {
		order = append(order, p.id)
	}
	if want := []int64{highID, lowID, after}; !slices.Equal(order, want) {
		t.Fatalf("key k published as %v, want the commit order %v (ids %d < %d)", order, want, lowID, highID)
	}
}
