package outbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCDCRelayIDWhoseSlotWasDroppedBeforeItPublishedRefusesOrPublishes
// starts relay d1 (which creates its slot), stops it before any event,
// lets the application commit events (the slot holds them), and drops
// the relay's slot as weir outbox drop-slot does. DropSlot's doc says the
// relay id then refuses to start again, as events committed since it last
// published would never be published. The relay id must either refuse
// (ErrSourceChanged) or publish those events; it must not start a new
// slot and carry on without them.
func TestCDCRelayIDWhoseSlotWasDroppedBeforeItPublishedRefusesOrPublishes(t *testing.T) {
	e := newCDCEnv(t)
	_, stop := e.startCDC("d1")
	e.waitSlotCreated("d1")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	held := e.placeOrdersInTxns(3, 1)

	slot, _, err := e.cdcRelay("d1").DropSlot(testCtx(t))
	if err != nil || slot == "" {
		t.Fatalf("drop slot: %q, %v", slot, err)
	}

	r := e.cdcRelay("d1")
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// A relay that refuses creates no slot: wait for either.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if lsn, ok := e.slotConfirmed("d1"); ok && lsn != 0 {
			break
		}
		select {
		case err := <-done:
			done <- err
			if errors.Is(err, ErrSourceChanged) {
				return // refused: what DropSlot's doc says
			}
			t.Fatalf("relay returned %v, want ErrSourceChanged or publishing", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("relay d1 neither created its slot nor refused in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	later := e.placeOrdersInTxns(1, 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			if errors.Is(err, ErrSourceChanged) {
				return // refused: what DropSlot's doc says
			}
			t.Fatalf("relay returned %v, want ErrSourceChanged or publishing", err)
		default:
		}
		seen := idsOf(e.readTopic(kgo.ReadCommitted()))
		if seen[later[0]] > 0 {
			missing := 0
			for _, id := range held {
				if seen[id] == 0 {
					missing++
				}
			}
			if missing > 0 {
				t.Fatalf("relay d1 started again after its slot was dropped and published event %d committed after, "+
					"but %d of the %d events committed while its slot held them (%v) are never published", later[0], missing, len(held), held)
			}
			e.assertExactlyOnce(append(held, later...))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay neither refused nor published event %d in 30 s", later[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitSlotCreated waits until relayID's slot exists and is consistent
// (has a confirmed position): transactions committed from then on are
// streamed by it.
func (e *env) waitSlotCreated(relayID string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if lsn, ok := e.slotConfirmed(relayID); ok && lsn != 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("relay %s created no slot in 30 s", relayID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
