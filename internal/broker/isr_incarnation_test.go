package broker

import (
	"slices"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/metadata"
)

// A replica joins the ISR only on what its current incarnation fetched
// (KIP-903): a broker that registered again may have come back without
// its log, so what its previous process fetched says nothing of what it
// holds. As in Kafka, where the leader keeps the broker epoch of each
// follower's fetches and proposes a follower only while that epoch is its
// current registration's (and the controller checks the epochs the
// AlterPartition request names), a restarted follower that has not
// fetched yet is not proposed, nor committed.
//
// Interleaving, with a real single-voter controller and the leader's own
// ISR checks (isrChanges, proposeISR): node 1 leads with ISR {1,2,3}.
// Broker 3 misses its heartbeats, is fenced and leaves the ISR; it comes
// back (same process) and is unfenced. Record 1 is written; followers 2
// and 3 fetch to the log end: 3 is caught up. Before the leader's next
// ISR check, broker 3's process restarts with an empty disk and
// registers again (a new incarnation), and is unfenced. The leader's ISR
// checks must not propose 3 on the old process's fetch: committed, the
// ISR would hold a replica that holds nothing, and were 1 and 2 lost next
// a clean election would pick 3 and every acknowledged record would be
// gone.
func TestAReplicaJoinsTheISROnlyOnWhatItsCurrentIncarnationFetched(t *testing.T) {
	const lagMaxMs = 30000
	h := newISRHarness(t)
	h.setBeat(3, false)
	h.waitImage("broker 3 fenced and out of the ISR", func(im *metadata.Image) bool {
		return !im.Unfenced(3) && !slices.Contains(im.Topics["r"].Partitions[h.idx].ISR, 3)
	})
	h.follow()
	h.setBeat(3, true)
	h.waitImage("broker 3 unfenced again", func(im *metadata.Image) bool { return im.Unfenced(3) })

	h.write("b")
	h.fetch(2)
	h.fetch(3) // broker 3's first process is caught up
	if hw := h.L.HighWatermark(); hw != 2 {
		t.Fatalf("setup: high watermark %d, want 2", hw)
	}

	// Broker 3's process restarts without its log and registers again.
	var oldEpoch int64
	h.c.View(func(im *metadata.Image) { oldEpoch = im.Brokers[3].Epoch })
	if err := h.c.RegisterBroker(3, "inc-3-restarted", "127.0.0.1", 9093, "", nil); err != nil {
		t.Fatal(err)
	}
	h.waitImage("broker 3's new registration unfenced", func(im *metadata.Image) bool {
		return im.Brokers[3].Epoch != oldEpoch && im.Unfenced(3)
	})

	inFlight := map[partitionKey]isrProposal{}
	for range 4 {
		h.isrTick(lagMaxMs, inFlight)
		h.follow()
		time.Sleep(100 * time.Millisecond)
	}
	if isr := h.mp().ISR; slices.Contains(isr, 3) {
		t.Fatalf("ISR %v holds broker 3, whose restarted process has fetched nothing (high watermark %d): "+
			"the leader proposed it on its previous process's fetch", isr, h.L.HighWatermark())
	}
}
