package broker

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/log/logtest"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
)

// The ISR shrinks when a live follower stops fetching (KIP-497,
// replica.lag.time.max.ms), whatever else the leader would like to change
// in it: a replica the controller will not take (a fenced broker, KIP-903)
// must not make the leader's proposals fail as a whole. As in Kafka, the
// leader proposes only eligible replicas for expansion (unfenced, not
// shutting down), so the removal of a lagging member goes through and the
// high watermark moves again.
//
// Interleaving, with a real single-voter controller and the leader's own
// ISR proposals (isrChanges, proposeISR): node 1 leads a partition with
// replicas and ISR {1,2,3}; both followers hold record 0. Broker 3 stops
// heartbeating (cut off from the controller, not from the leader) and the
// controller fences it: ISR {1,2}. Broker 3 keeps fetching from the
// leader and stays at its log end; follower 2, live (heartbeating), stops
// fetching. The leader takes record 1: its high watermark waits for 2.
// Every ISR check then proposes {1,3} (drop 2, add the caught-up 3), the
// controller answers INELIGIBLE_REPLICA for the whole change, and 2 is
// never dropped: the partition takes no acks=all write for as long as 3
// stays fenced and fetching.
func TestTheISRDropsAStoppedFollowerWhileAFencedReplicaKeepsFetching(t *testing.T) {
	const lagMaxMs = 400
	addr := freeLoopback(t)
	cfg := config.NewBroker()
	for k, v := range map[string]string{
		"node.id": "1", "controller.quorum.voters": "1@" + addr, "controller.listeners": addr,
		"controller.quorum.election.timeout.ms": "300",
		"broker.session.timeout.ms":             "1500",
	} {
		if err := cfg.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	c, err := controller.Open(t.TempDir(), 1, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetListener(nil)

	deadline := time.Now().Add(15 * time.Second)
	for id := int32(1); id <= 3; id++ {
		for {
			err := c.RegisterBroker(id, fmt.Sprintf("inc-%d", id), "127.0.0.1", 9090+id, nil)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("register %d: %v", id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	heartbeat := func(id int32) bool {
		var epoch, applied int64
		c.View(func(im *metadata.Image) { epoch, applied = im.Brokers[id].Epoch, im.Offset })
		res, err := c.BrokerHeartbeat(controller.Heartbeat{NodeID: id, Epoch: epoch, AppliedOffset: applied})
		return err == nil && !res.Fenced
	}
	// Brokers 1 and 2 heartbeat throughout; broker 3 only until stop3.
	stop, stop3 := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		beat3 := true
		for {
			heartbeat(1)
			heartbeat(2)
			if beat3 {
				heartbeat(3)
			}
			select {
			case <-stop:
				return
			case <-stop3:
				beat3, stop3 = false, nil
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
	waitImage := func(what string, cond func(im *metadata.Image) bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			ok := false
			c.View(func(im *metadata.Image) { ok = cond(im) })
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitImage("brokers unfenced", func(im *metadata.Image) bool {
		return im.Unfenced(1) && im.Unfenced(2) && im.Unfenced(3)
	})
	if _, _, err := c.CreateTopic(controller.CreateTopic{Name: "r", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	// A partition node 1 leads, with the whole assignment in its ISR.
	var top *metadata.Topic
	idx := int32(-1)
	waitImage("a partition led by node 1", func(im *metadata.Image) bool {
		top = im.Topics["r"]
		if top == nil {
			return false
		}
		for i, mp := range top.Partitions {
			if mp.Leader == 1 && len(mp.ISR) == 3 {
				idx = int32(i)
				return true
			}
		}
		return false
	})
	mp := func() metadata.Partition {
		var p metadata.Partition
		c.View(func(im *metadata.Image) { p = im.Topics["r"].Partitions[idx] })
		return p
	}

	L, err := partition.OpenWith("r", idx, "/l", roundsConfig(logtest.NewMemFS()), mp().LeaderEpoch, mp().ISR,
		partition.Options{ManualFlush: true, ReplicaID: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { L.Close() })
	b := &Broker{
		cfg: Config{NodeID: 1}, ctrl: c, incarnation: "inc-1",
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		topics: map[string]*topicState{"r": {id: top.ID, parts: make([]*partition.Partition, len(top.Partitions))}},
	}
	b.topics["r"].parts[idx] = L
	// reconcile's part: the leader takes the image's ISR.
	follow := func() {
		t.Helper()
		cur := mp()
		if L.LeaderEpoch() != cur.LeaderEpoch || !slices.Equal(L.ISR(), cur.ISR) {
			if err := L.SetLeader(cur.LeaderEpoch, cur.ISR); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(v string) {
		t.Helper()
		rec := batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{{Value: []byte(v)}})
		h, err := batch.ParseHeader(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := L.Append(rec, h, nowMs()); err != nil {
			t.Fatal(err)
		}
		if err := L.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(r int32) {
		t.Helper()
		if _, err := L.UpdateFollower(r, L.LogEndOffset(), L.LatestEpoch(), nowMs()); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	fetch(2)
	fetch(3)
	if hw := L.HighWatermark(); hw != 1 {
		t.Fatalf("setup: high watermark %d, want 1", hw)
	}

	// Broker 3 loses the controller; the controller fences it and it
	// leaves the ISR.
	close(stop3)
	waitImage("broker 3 fenced and out of the ISR", func(im *metadata.Image) bool {
		p := im.Topics["r"].Partitions[idx]
		return !im.Unfenced(3) && !slices.Contains(p.ISR, 3) && slices.Contains(p.ISR, 2)
	})
	follow()

	// Follower 2 stops fetching; 3 keeps fetching at the log end.
	write("b")
	inFlight := map[partitionKey]isrProposal{}
	deadline = time.Now().Add(8 * time.Second)
	for slices.Contains(mp().ISR, 2) {
		if time.Now().After(deadline) {
			t.Fatalf("follower 2 stopped fetching %v ago and is still in the ISR %v (high watermark %d, log end %d): "+
				"every proposal also adds fenced broker 3 and is refused whole", 8*time.Second, mp().ISR, L.HighWatermark(), L.LogEndOffset())
		}
		fetch(3)
		if props := b.isrChanges(lagMaxMs, inFlight); len(props) > 0 {
			b.proposeISR(props, inFlight, lagMaxMs)
		}
		follow()
		time.Sleep(lagMaxMs / 4 * time.Millisecond)
	}
	follow()
	if hw := L.HighWatermark(); hw != 2 {
		t.Fatalf("with 2 out of the ISR %v, high watermark %d, want 2", L.ISR(), hw)
	}
}

// freeLoopback finds a loopback address no one listens on.
func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
