package outbox

import (
	"testing"
)

// TestReleaseOfADeadRelayPublishesNothingTwice kills relay r1 after its
// second batch committed in Kafka but before its rows were marked sent;
// r1 never comes back. Its rows are released for others, and relay r2
// drains the outbox: every event is published exactly once.
func TestReleaseOfADeadRelayPublishesNothingTwice(t *testing.T) {
	const events, batchSize = 30, 10
	e := newEnv(t)
	ids := e.placeOrders(events)
	c := e.startChild("r1", batchSize, crashBeforeMarkSent, 2)
	if killed, err := c.wait(testCtx(t)); err != nil || !killed {
		t.Fatalf("child: killed %v, err %v, state %v", killed, err, c.cmd.ProcessState)
	}
	if got := e.claimedIDs("r1"); len(got) != batchSize {
		t.Fatalf("rows claimed by the dead relay: %v, want its committed batch", got)
	}

	// Releasing the rows by hand (UPDATE … SET state = 'pending' WHERE
	// relay_id = 'r1') would publish the committed batch again.
	gone, err := NewRelay(e.pool, e.config("r1", batchSize))
	if err != nil {
		t.Fatal(err)
	}
	sent, released, err := gone.Release(testCtx(t))
	if err != nil || sent != batchSize || released != 0 {
		t.Fatalf("release: %d sent, %d released, %v; want the committed batch (%d rows) sent", sent, released, err, batchSize)
	}

	r := e.startRelay(e.config("r2", batchSize))
	e.waitAllSent(events)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	e.assertExactlyOnce(ids)
}
