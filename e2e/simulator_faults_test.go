package e2e

import (
	"strings"
	"testing"
)

// "Cut the connection" closes the producer's connection right after the
// broker sends the next produce response: whatever else was in flight on
// it gets no answer, and the producer reconnects and sends it again. An
// acks=1 producer with retries comes through with every record
// acknowledged and none lost (what it writes twice is measured, not
// claimed); the idempotent producer with the dedup consumer under the
// same click ends with no duplicate and exactly-once held. Every figure
// equals the lab checker's over the session's logs, and the broker says
// it cut exactly the one response clicked.
func TestSimulatorCutConnectionLosesNothingAndTheIdempotentProducerDuplicatesNothing(t *testing.T) {
	_, admin := startConsoleBroker(t)
	b := newConsoleBrowser(t, admin)
	base := "http://" + admin

	t.Run("acks=1 with retries reconnects and loses nothing", func(t *testing.T) {
		r := runSimulator(t, b, map[string]string{"acks": "1", "retries": "on", "idempotence": "off", "transactions": "off",
			"maxInFlight": "5", "commit": "after", "readCommitted": "off", "dedup": "off", "seed": "21"}, "cut-connection", "simulator-acks1-cut-connection")
		if r.page.Acked != r.page.Sent || r.page.Lost != 0 || r.drawnLost != 0 {
			t.Errorf("acks=1 with retries after a cut connection: page counts %d of %d acknowledged and %d lost (%d drawn); want all acknowledged, none lost",
				r.page.Acked, r.page.Sent, r.page.Lost, r.drawnLost)
		}
		if r.verdict != "nothing claimed; measured only" {
			t.Errorf("verdict %q: acks=1 claims nothing", r.verdict)
		}
		checker, hit := checkerFigures(t, base)
		assertPageIsChecker(t, r, checker)
		if hit != 1 {
			t.Errorf("the broker cut %d connections after a produce response, want the 1 clicked", hit)
		}
	})
	t.Run("the idempotent producer writes nothing twice", func(t *testing.T) {
		r := runSimulator(t, b, map[string]string{"acks": "all", "retries": "on", "idempotence": "on", "transactions": "off",
			"maxInFlight": "5", "commit": "after", "readCommitted": "on", "dedup": "on", "seed": "21"}, "cut-connection", "simulator-idempotent-cut-connection")
		if r.page.Duplicated != 0 || r.drawnDup != 0 || r.page.Lost != 0 || r.page.Acked != r.page.Sent {
			t.Errorf("idempotent producer and dedup consumer after a cut connection: page counts %d duplicates (%d drawn), %d lost, %d of %d acknowledged; want none, none, all",
				r.page.Duplicated, r.drawnDup, r.page.Lost, r.page.Acked, r.page.Sent)
		}
		if !strings.HasPrefix(r.verdict, "held: exactly-once") {
			t.Errorf("verdict %q, want exactly-once held", r.verdict)
		}
		checker, hit := checkerFigures(t, base)
		assertPageIsChecker(t, r, checker)
		if hit != 1 {
			t.Errorf("the broker cut %d connections after a produce response, want the 1 clicked: no duplicate proves nothing without it", hit)
		}
	})
	b.assertClean()
}

// A transactional producer (transactions of ten records) and a
// read_committed consumer applying records through the dedup store come
// through a broker SIGKILLed with records in flight with nothing lost,
// nothing duplicated and no record of an aborted transaction processed:
// the verdict is exactly-once held, and every figure equals the lab
// checker's over the session's logs.
func TestSimulatorTransactionsComeThroughABrokerKillExactlyOnce(t *testing.T) {
	_, admin := startConsoleBroker(t)
	b := newConsoleBrowser(t, admin)
	r := runSimulator(t, b, map[string]string{"acks": "all", "retries": "on", "idempotence": "on", "transactions": "on",
		"maxInFlight": "5", "commit": "after", "readCommitted": "on", "dedup": "on", "seed": "9"}, "kill-broker", "simulator-transactions-kill-broker")
	if r.page.Lost != 0 || r.page.Duplicated != 0 || r.drawnDup != 0 || r.page.RCViolations != 0 {
		t.Errorf("transactions, read_committed and dedup through a broker kill: page counts %d lost, %d duplicated (%d drawn), %d aborted records processed; want none",
			r.page.Lost, r.page.Duplicated, r.drawnDup, r.page.RCViolations)
	}
	if r.page.Acked == 0 {
		t.Errorf("no transaction was committed: the page counts %+v", r.page)
	}
	if !strings.HasPrefix(r.verdict, "held: exactly-once") {
		t.Errorf("verdict %q, want exactly-once held", r.verdict)
	}
	events := eval[string](b, `document.getElementById('events').textContent`)
	if !strings.Contains(events, "broker SIGKILLed") || !strings.Contains(events, "broker restarted") {
		t.Errorf("the events do not show the broker killed and restarted:\n%s", events)
	}
	checker, _ := checkerFigures(t, "http://"+admin)
	assertPageIsChecker(t, r, checker)
	b.assertClean()
}
