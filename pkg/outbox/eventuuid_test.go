package outbox

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// uuidRE is the text form of a UUID.
var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestEventUUIDTellsApartEventsWithTheSameID publishes event 1 of two
// databases to one topic, one through the polling relay and one through
// change data capture: weir-event-id is the same for both (a per-table
// sequence value), weir-event-uuid differs, so only the latter may serve
// as a deduplication key across tables and databases.
func TestEventUUIDTellsApartEventsWithTheSameID(t *testing.T) {
	a := newCDCEnv(t)
	b := newEnvOn(t, a.brokers, "unused")
	b.topic = a.topic
	a.cdcSetup("c1")
	idA := a.writeEvent(Event{Topic: a.topic, Payload: []byte("a")})
	idB := b.writeEvent(Event{Topic: b.topic, Payload: []byte("b")})
	if idA != idB {
		t.Fatalf("ids %d and %d: want the same id in both databases", idA, idB)
	}
	_, stop := a.startCDC("c1")
	r := b.startRelay(b.config("r1", 10))
	b.waitAllSent(1)
	deadline := time.Now().Add(30 * time.Second)
	var got []published
	for len(got) < 2 && time.Now().Before(deadline) {
		got = a.readTopic(kgo.ReadCommitted())
		time.Sleep(50 * time.Millisecond)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("published %d records, want 2", len(got))
	}
	u0, u1 := got[0].headers[EventUUIDHeader], got[1].headers[EventUUIDHeader]
	for _, u := range []string{u0, u1} {
		if !uuidRE.MatchString(u) {
			t.Fatalf("header %s = %q, want a UUID", EventUUIDHeader, u)
		}
	}
	if u0 == u1 || got[0].headers[EventIDHeader] != got[1].headers[EventIDHeader] {
		t.Fatalf("headers %v and %v: want the same event id and different uuids", got[0].headers, got[1].headers)
	}
}

// TestRelaysRefuseATableWithoutEventUUID runs both relays on an outbox
// table that predates event_uuid: each refuses to start, saying to run
// the migration, rather than retry for ever.
func TestRelaysRefuseATableWithoutEventUUID(t *testing.T) {
	e := newCDCEnv(t)
	if _, err := e.pool.Exec(testCtx(t), `ALTER TABLE weir_outbox DROP COLUMN event_uuid`); err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(e.pool, e.config("r1", 10))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Run(ctx); err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "weir outbox migrate") {
		t.Fatalf("polling relay: %v (deadline passed: %v); want a refusal saying to migrate", err, ctx.Err() != nil)
	}
	err = runUntilRefused(t, e.cdcRelay("c1"), 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "weir outbox migrate") {
		t.Fatalf("cdc relay: %v; want a refusal saying to migrate", err)
	}
}
