package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// clusterRecovered is the condition runSimulatorUntil waits for after a
// node fault: every node up again and the event that says every replica
// is back in sync.
func clusterRecovered(b *consoleBrowser) func() bool {
	return func() bool {
		nodes := eval[string](b, `document.getElementById('broker').textContent`)
		events := eval[string](b, `document.getElementById('events').textContent`)
		return strings.Count(nodes, "node ") == 3 && !strings.Contains(nodes, "down") &&
			strings.Contains(events, "every replica in sync again")
	}
}

// assertLeaderMoved checks that the events show the leader killed and
// another replica elected.
func assertLeaderMoved(t *testing.T, b *consoleBrowser) {
	t.Helper()
	events := eval[string](b, `document.getElementById('events').textContent`)
	if !regexp.MustCompile(`kill the leader \(at record \d+\): node \d SIGKILLed`).MatchString(events) ||
		!regexp.MustCompile(`node \d leads \(epoch \d+\)`).MatchString(events) {
		t.Errorf("the events do not show the leader killed and another replica leading:\n%s", events)
	}
}

// `weir lab --ui --cluster 3` runs each session on a three-node cluster
// (one partition, replication factor 3, min.insync.replicas=2). "Kill
// the leader" SIGKILLs the partition's leader while an acks=all
// idempotent producer writes and a read_committed consumer applies
// records through the dedup store: another replica leads, the killed
// node comes back, and the session ends with nothing acknowledged lost
// and nothing duplicated, exactly-once held, every figure equal to the
// lab checker's over the session's logs.
func TestSimulatorClusterKillTheLeaderLosesNothingWithAcksAllAndIdempotence(t *testing.T) {
	addr := startLabUI(t, "--cluster", "3")
	b := newConsoleBrowser(t, addr)
	r := runSimulatorUntil(t, b, map[string]string{"acks": "all", "retries": "on", "idempotence": "on", "transactions": "off",
		"maxInFlight": "5", "commit": "after", "readCommitted": "on", "dedup": "on", "seed": "31"}, "kill-leader", "simulator-cluster-acksall-kill-leader", clusterRecovered(b))
	assertLeaderMoved(t, b)
	if r.page.Lost != 0 || r.drawnLost != 0 || r.page.Duplicated != 0 || r.drawnDup != 0 {
		t.Errorf("acks=all and idempotence through a leader kill: page counts %d lost (%d drawn), %d duplicated (%d drawn); want none",
			r.page.Lost, r.drawnLost, r.page.Duplicated, r.drawnDup)
	}
	if !strings.HasPrefix(r.verdict, "held: exactly-once") {
		t.Errorf("verdict %q, want exactly-once held", r.verdict)
	}
	checker, _ := checkerFigures(t, "http://"+addr)
	assertPageIsChecker(t, r, checker)
	b.assertClean()
}

// With acks=1 the leader answers before any follower holds the write, so
// a leader kill may lose acknowledged records; how many depends on what
// the followers had fetched when it died. The page claims nothing for
// these settings and shows what was measured: every figure equal to the
// lab checker's over the session's logs.
func TestSimulatorClusterKillTheLeaderWithAcks1ShowsWhatTheCheckerCounts(t *testing.T) {
	addr := startLabUI(t, "--cluster", "3")
	b := newConsoleBrowser(t, addr)
	r := runSimulatorUntil(t, b, map[string]string{"acks": "1", "retries": "on", "idempotence": "off", "transactions": "off",
		"maxInFlight": "5", "commit": "after", "readCommitted": "off", "dedup": "off", "seed": "33"}, "kill-leader", "simulator-cluster-acks1-kill-leader", clusterRecovered(b))
	assertLeaderMoved(t, b)
	if r.verdict != "nothing claimed; measured only" {
		t.Errorf("verdict %q: acks=1 claims nothing", r.verdict)
	}
	t.Logf("acks=1 through a leader kill: %+v", r.page)
	checker, _ := checkerFigures(t, "http://"+addr)
	assertPageIsChecker(t, r, checker)
	b.assertClean()
}

// "Kill two nodes" SIGKILLs the leader's two followers for longer than
// the producer's delivery timeout: with acks=all and
// min.insync.replicas=2 the surviving leader cannot acknowledge a write.
// It answers REQUEST_TIMED_OUT while its ISR cannot shrink (the metadata
// quorum went down with the two nodes) and NOT_ENOUGH_REPLICAS once the
// ISR is below min.insync.replicas (when the nodes are back and the
// shrink is committed before they catch up); which of them a run shows
// depends on timing, so any counts, as the lab's proxies count them and
// the page shows them. The records refused all along are given
// up, drawn as not acknowledged, and nothing acknowledged is lost; every
// figure equals the lab checker's over the session's logs.
func TestSimulatorClusterKillTwoNodesRefusesWritesAndLosesNothingAcknowledged(t *testing.T) {
	addr := startLabUI(t, "--cluster", "3")
	b := newConsoleBrowser(t, addr)
	r := runSimulatorUntil(t, b, map[string]string{"acks": "all", "retries": "on", "idempotence": "on", "transactions": "off",
		"maxInFlight": "5", "commit": "after", "readCommitted": "on", "dedup": "on", "seed": "35"}, "kill-two-nodes", "simulator-cluster-acksall-kill-two-nodes", clusterRecovered(b))
	refused := eval[string](b, `document.getElementById('refused').textContent`)
	if !regexp.MustCompile(`(NOT_ENOUGH_REPLICAS(_AFTER_APPEND)?|REQUEST_TIMED_OUT) ×[1-9]`).MatchString(refused) {
		t.Errorf("the page shows the producer answered with %q; want writes refused (NOT_ENOUGH_REPLICAS or REQUEST_TIMED_OUT) while two of three replicas are down", refused)
	}
	t.Logf("errors the nodes answered the producer with: %s", refused)
	notAcked := eval[int](b, `document.querySelectorAll('#grid .f-f').length`)
	if notAcked < 1 || r.page.Acked >= r.page.Sent {
		t.Errorf("two nodes down past the delivery timeout: %d records drawn as given up, %d of %d acknowledged; want some refused records not acknowledged",
			notAcked, r.page.Acked, r.page.Sent)
	}
	if r.page.Lost != 0 || r.drawnLost != 0 {
		t.Errorf("acks=all, min.insync.replicas=2 with two nodes killed: page counts %d lost (%d drawn), want none", r.page.Lost, r.drawnLost)
	}
	checker, _ := checkerFigures(t, "http://"+addr)
	assertPageIsChecker(t, r, checker)
	b.assertClean()
}

// In a cluster, "drop the next acknowledgement" goes to the injector of
// the partition's leader, the node that answers the producer: the nodes
// report exactly the one response dropped, and the idempotent producer
// that sends the write again has it written once.
func TestSimulatorClusterDropsTheLeadersAcknowledgementAndTheIdempotentProducerWritesOnce(t *testing.T) {
	addr := startLabUI(t, "--cluster", "3")
	b := newConsoleBrowser(t, addr)
	r := runSimulator(t, b, map[string]string{"acks": "all", "retries": "on", "idempotence": "on", "transactions": "off",
		"maxInFlight": "5", "commit": "after", "readCommitted": "on", "dedup": "on", "seed": "37"}, "drop-ack", "simulator-cluster-idempotent-drop-ack")
	if r.page.Duplicated != 0 || r.drawnDup != 0 || r.page.Lost != 0 {
		t.Errorf("idempotent producer and dedup consumer after a dropped acknowledgement: page counts %d duplicates (%d drawn) and %d lost, want none",
			r.page.Duplicated, r.drawnDup, r.page.Lost)
	}
	checker, hit := checkerFigures(t, "http://"+addr)
	assertPageIsChecker(t, r, checker)
	if hit != 1 {
		t.Errorf("the nodes dropped %d produce responses, want the 1 clicked", hit)
	}
	b.assertClean()
}
