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

// isrHarness is a real single-voter controller with brokers 1-3
// registered, a topic whose partition idx node 1 leads with ISR {1,2,3},
// the leader partition L on node 1 holding record 0 that both followers
// fetched, and a broker value b whose ISR checks (isrChanges,
// proposeISR) run against them. beat[id] set to false stops id's
// heartbeats.
type isrHarness struct {
	t    *testing.T
	c    *controller.Controller
	b    *Broker
	L    *partition.Partition
	idx  int32
	mu   sync.Mutex
	beat map[int32]bool
}

func (h *isrHarness) setBeat(id int32, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beat[id] = on
}

func newISRHarness(t *testing.T) *isrHarness {
	h := &isrHarness{t: t, beat: map[int32]bool{1: true, 2: true, 3: true}}
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
			err := c.RegisterBroker(id, fmt.Sprintf("inc-%d", id), "127.0.0.1", 9090+id, "", nil)
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
	// Each broker heartbeats while h.beat says so.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for id := int32(1); id <= 3; id++ {
				h.mu.Lock()
				on := h.beat[id]
				h.mu.Unlock()
				if on {
					heartbeat(id)
				}
			}
			select {
			case <-stop:
				return
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
		if _, err := L.UpdateFollower(r, -1, L.LogEndOffset(), L.LatestEpoch(), nowMs()); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	fetch(2)
	fetch(3)
	if hw := L.HighWatermark(); hw != 1 {
		t.Fatalf("setup: high watermark %d, want 1", hw)
	}

	h.c, h.b, h.L, h.idx = c, b, L, idx
	return h
}

// mp is the partition in the controller's image.
func (h *isrHarness) mp() metadata.Partition {
	var p metadata.Partition
	h.c.View(func(im *metadata.Image) { p = im.Topics["r"].Partitions[h.idx] })
	return p
}

// waitImage waits until cond holds of the controller's image.
func (h *isrHarness) waitImage(what string, cond func(im *metadata.Image) bool) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := false
		h.c.View(func(im *metadata.Image) { ok = cond(im) })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// follow is reconcile's part: the leader takes the image's ISR.
func (h *isrHarness) follow() {
	h.t.Helper()
	cur := h.mp()
	if h.L.LeaderEpoch() != cur.LeaderEpoch || !slices.Equal(h.L.ISR(), cur.ISR) {
		if err := h.L.SetLeader(cur.LeaderEpoch, cur.ISR); err != nil {
			h.t.Fatal(err)
		}
	}
}

// write appends one record to the leader and fsyncs it.
func (h *isrHarness) write(v string) {
	h.t.Helper()
	rec := batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{{Value: []byte(v)}})
	hd, err := batch.ParseHeader(rec)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, _, err := h.L.Append(rec, hd, nowMs()); err != nil {
		h.t.Fatal(err)
	}
	if err := h.L.Sync(); err != nil {
		h.t.Fatal(err)
	}
}

// fetch is a fetch of follower r at the leader's log end, now.
func (h *isrHarness) fetch(r int32) {
	h.t.Helper()
	// A follower's fetch carries its broker's epoch: its registration's,
	// as it finds it in its own image.
	epoch := int64(-1)
	h.c.View(func(im *metadata.Image) {
		if br, ok := im.Brokers[r]; ok {
			epoch = br.Epoch
		}
	})
	if _, err := h.L.UpdateFollower(r, epoch, h.L.LogEndOffset(), h.L.LatestEpoch(), nowMs()); err != nil {
		h.t.Fatal(err)
	}
}

// isrTick is one of the leader's ISR checks (isrLoop), with lagMaxMs.
func (h *isrHarness) isrTick(lagMaxMs int64, inFlight map[partitionKey]isrProposal) {
	if props := h.b.isrChanges(lagMaxMs, inFlight); len(props) > 0 {
		h.b.proposeISR(props, inFlight, lagMaxMs)
	}
}

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
// The leader's ISR checks must drop 2 without proposing the fenced 3
// (which the controller would refuse, and the whole change with it), so
// the partition takes acks=all writes again.
func TestTheISRDropsAStoppedFollowerWhileAFencedReplicaKeepsFetching(t *testing.T) {
	const lagMaxMs = 400
	h := newISRHarness(t)
	// Broker 3 loses the controller; the controller fences it and it
	// leaves the ISR.
	h.setBeat(3, false)
	h.waitImage("broker 3 fenced and out of the ISR", func(im *metadata.Image) bool {
		p := im.Topics["r"].Partitions[h.idx]
		return !im.Unfenced(3) && !slices.Contains(p.ISR, 3) && slices.Contains(p.ISR, 2)
	})
	h.follow()

	// Follower 2 stops fetching; 3 keeps fetching at the log end.
	h.write("b")
	inFlight := map[partitionKey]isrProposal{}
	deadline := time.Now().Add(8 * time.Second)
	for slices.Contains(h.mp().ISR, 2) {
		if time.Now().After(deadline) {
			t.Fatalf("follower 2 stopped fetching %v ago and is still in the ISR %v (high watermark %d, log end %d): "+
				"every proposal also adds fenced broker 3 and is refused whole", 8*time.Second, h.mp().ISR, h.L.HighWatermark(), h.L.LogEndOffset())
		}
		h.fetch(3)
		h.isrTick(lagMaxMs, inFlight)
		h.follow()
		time.Sleep(lagMaxMs / 4 * time.Millisecond)
	}
	h.follow()
	if hw := h.L.HighWatermark(); hw != 2 {
		t.Fatalf("with 2 out of the ISR %v, high watermark %d, want 2", h.L.ISR(), hw)
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
