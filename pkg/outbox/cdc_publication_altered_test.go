package outbox

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCDCPublicationThatStopsPublishingInsertsWhileRunningLosesNothing
// has an operator change a running change-data-capture relay's
// publication so that it no longer publishes inserts (ALTER PUBLICATION
// ... SET (publish = 'delete')); the table stays in it. The package doc:
// the publication "must publish exactly the inserts of the table, every
// row and column ... otherwise the relay stops with an error naming what
// it found", and every outbox row committed after the slot exists is
// published, or the relay stops with an error that says what to do. The
// relay checks the publication's table while it streams (every 2 s), but
// not what it publishes.
//
// The correct outcome: the events committed after the change are
// published, or the relay stops with an error naming the publication.
// What happens instead: the relay runs on without them and its
// heartbeats confirm its slot past them, so no later start streams them.
func TestCDCPublicationThatStopsPublishingInsertsWhileRunningLosesNothing(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("i1", 0)
	cfg.HeartbeatInterval = 500 * time.Millisecond
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(2, 1)
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitSeen(first, 30*time.Second)

	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` SET (publish = 'delete')`); err != nil {
		t.Fatal(err)
	}
	ids := e.placeOrdersInTxns(3, 1)
	committed := e.walLSN() // the events are committed before this
	e.placeOrders(1)        // other writes: the server's position moves on
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			t.Logf("relay stopped: %v", err)
			return
		case <-time.After(200 * time.Millisecond):
		}
		seen := e.readSeen()
		missing := 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			slot, _ := e.slotConfirmed("i1")
			t.Fatalf("the relay runs on, but after 20 s %d of the %d events committed after the publication stopped publishing inserts are not published, "+
				"and it has not stopped with an error; its slot is confirmed at %s (the events were committed before %s)", missing, len(ids), slot, committed)
		}
	}
}

// TestCDCPublicationGivenAColumnListWhileRunningPublishesNoTruncatedEvent
// has an operator give a running change-data-capture relay's publication
// a column list (ALTER PUBLICATION ... SET TABLE weir_outbox (id, topic,
// event_uuid)): the table stays in the publication, but the slot then
// streams inserts without their key, payload and headers. The package
// doc: the publication must publish "every row and column ... otherwise
// the relay stops with an error naming what it found"; the relay refuses
// such a publication at start, but does not look while it streams.
//
// The correct outcome: each event committed after the change is
// published with the key and payload it was written with, or the relay
// stops with an error. What happens instead: the events are published
// with neither key nor payload, exactly once, and nothing says so.
func TestCDCPublicationGivenAColumnListWhileRunningPublishesNoTruncatedEvent(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	cfg := e.config("l1", 0)
	e.cdcSetupWith(cfg)
	_, pub := e.cdcNames(cfg)
	first := e.placeOrdersInTxns(1, 1)
	r, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	e.waitSeen(first, 30*time.Second)

	if _, err := e.pool.Exec(ctx, `ALTER PUBLICATION `+pub+` SET TABLE weir_outbox (id, topic, event_uuid)`); err != nil {
		t.Fatal(err)
	}
	ids := e.placeOrdersInTxns(2, 1) // payloads "0" and "1", keys c0 and c1
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			t.Logf("relay stopped: %v", err)
			return
		case <-time.After(200 * time.Millisecond):
		}
		got := map[int64]published{}
		for _, p := range e.readTopic(kgo.ReadCommitted()) {
			got[p.id] = p
		}
		all := true
		for _, id := range ids {
			_, ok := got[id]
			all = all && ok
		}
		if all {
			for i, id := range ids {
				if want := strconv.Itoa(i); got[id].payload != want || got[id].key == "" {
					t.Errorf("event %d published with key %q and payload %q; it was written with key c%d and payload %q", id, got[id].key, got[id].payload, i, want)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the relay runs on without publishing events %v", ids)
		}
	}
}

// waitSeen waits (at most d) until every one of ids is in the topic
// (read_committed) and returns how often each event id is there; the
// topic may hold other events.
func (e *env) waitSeen(ids []int64, d time.Duration) map[int64]int {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		seen := idsOf(e.readTopic(kgo.ReadCommitted()))
		all := true
		for _, id := range ids {
			all = all && seen[id] > 0
		}
		if all {
			return seen
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after %v, events %v not all published: %v", d, ids, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
