package controller

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/metadata"
)

// testQuorum is n controllers of one quorum in this process, each on its
// own data directory and loopback port.
type testQuorum struct {
	t      *testing.T
	dirs   []string
	addrs  []string
	extra  map[string]string
	nodes  []*Controller // nil while stopped
	voters string
}

// freeAddr finds a loopback address no one listens on, below the
// kernel's ephemeral range: a node stopped and started again on it must
// find it free, and a port from that range may meanwhile have become an
// outgoing connection's local port.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+mrand.IntN(12000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}

func newTestQuorum(t *testing.T, n int, extra map[string]string) *testQuorum {
	return newTestQuorumWithLearners(t, n, 0, extra)
}

// newTestQuorumWithLearners is newTestQuorum with broker-only nodes
// n+1..n+learners besides the n voters.
func newTestQuorumWithLearners(t *testing.T, n, learners int, extra map[string]string) *testQuorum {
	q := &testQuorum{t: t, extra: extra, nodes: make([]*Controller, n+learners)}
	var vs []string
	for i := range n + learners {
		q.dirs = append(q.dirs, t.TempDir())
		q.addrs = append(q.addrs, freeAddr(t))
		if i < n {
			vs = append(vs, fmt.Sprintf("%d@%s", i+1, q.addrs[i]))
		}
	}
	q.voters = strings.Join(vs, ",")
	for i := range n + learners {
		q.start(i)
	}
	t.Cleanup(func() {
		for i := range q.nodes {
			q.stop(i)
		}
	})
	// Every node registers as a broker, as weir serve does, so topics
	// can be placed; each registration goes through the node itself,
	// forwarded to the leader when it follows.
	q.leader()
	for i, c := range q.nodes {
		if err := c.RegisterBroker(int32(i+1), fmt.Sprintf("incarnation-%d", i+1), "127.0.0.1", int32(9092+i), "", nil); err != nil {
			t.Fatalf("register node %d: %v", i+1, err)
		}
	}
	for i := range q.nodes {
		q.unfence(i)
	}
	return q
}

// unfence sends node i's heartbeats to the controller until its
// registration is unfenced (the test quorum's session timeout is long, so
// it stays so without further heartbeats).
func (q *testQuorum) unfence(i int) {
	q.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := q.leader()
		var epoch, applied int64
		q.nodes[l].View(func(im *metadata.Image) { epoch = im.Brokers[int32(i+1)].Epoch })
		q.nodes[i].View(func(im *metadata.Image) { applied = im.Offset })
		res, err := q.nodes[l].BrokerHeartbeat(Heartbeat{NodeID: int32(i + 1), Epoch: epoch, AppliedOffset: applied})
		if err == nil && !res.Fenced {
			return
		}
		if time.Now().After(deadline) {
			q.t.Fatalf("node %d still fenced: %+v, %v", i+1, res, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (q *testQuorum) start(i int) {
	q.t.Helper()
	cfg := config.NewBroker()
	for k, v := range map[string]string{
		"node.id": fmt.Sprint(i + 1), "controller.quorum.voters": q.voters, "controller.listeners": q.addrs[i],
		"controller.quorum.election.timeout.ms": "300",
		// Brokers here are registrations without processes: no session
		// expires within a test.
		"broker.session.timeout.ms": "600000",
	} {
		if err := cfg.Set(k, v); err != nil {
			q.t.Fatal(err)
		}
	}
	for k, v := range q.extra {
		if err := cfg.Set(k, v); err != nil {
			q.t.Fatal(err)
		}
	}
	c, err := Open(q.dirs[i], int32(i+1), cfg, nil)
	if err != nil {
		q.t.Fatal(err)
	}
	c.SetListener(nil)
	q.nodes[i] = c
}

func (q *testQuorum) stop(i int) {
	if q.nodes[i] != nil {
		q.nodes[i].Close()
		q.nodes[i] = nil
	}
}

// leader waits until exactly one running node leads and every running
// node names it; it returns its index.
func (q *testQuorum) leader() int {
	q.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		claims, agreed := -1, true
		var named int32 = -2
		for i, c := range q.nodes {
			if c == nil {
				continue
			}
			id := c.ControllerID()
			if id == int32(i+1) {
				if claims >= 0 {
					q.t.Fatalf("nodes %d and %d both claim to be the controller", claims+1, i+1)
				}
				claims = i
			}
			if named == -2 {
				named = id
			} else if id != named {
				agreed = false
			}
		}
		if claims >= 0 && agreed {
			return claims
		}
		time.Sleep(20 * time.Millisecond)
	}
	q.t.Fatal("no single leader within 10s")
	return -1
}

// converged waits until every running node's image equals the leader's.
func (q *testQuorum) converged(leader int) []byte {
	q.t.Helper()
	var want []byte
	var offset int64
	q.nodes[leader].View(func(im *metadata.Image) { want, offset = im.Encode(), im.Offset })
	deadline := time.Now().Add(10 * time.Second)
	for i, c := range q.nodes {
		if c == nil {
			continue
		}
		for {
			var got []byte
			var at int64
			c.View(func(im *metadata.Image) { got, at = im.Encode(), im.Offset })
			if string(got) == string(want) && at >= offset {
				break
			}
			if time.Now().After(deadline) {
				q.t.Fatalf("node %d's image (offset %d) did not reach the leader's (offset %d):\n got %s\nwant %s", i+1, at, offset, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return want
}

func TestQuorumReplicatesChangesMadeOnTheLeader(t *testing.T) {
	q := newTestQuorum(t, 3, nil)
	l := q.leader()
	if _, _, err := q.nodes[l].CreateTopic(CreateTopic{Name: "orders", Partitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.nodes[l].AllocateProducerIDs(1000); err != nil {
		t.Fatal(err)
	}
	v := "1000"
	if err := q.nodes[l].AlterTopicConfigs("orders", []ConfigChange{{Name: "retention.ms", Value: &v}}, false, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.nodes[l].CreateTopic(CreateTopic{Name: "orders", Partitions: 1, ReplicationFactor: 1}); !IsCode(err, kerr.TopicAlreadyExists) {
		t.Fatalf("second create: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	if _, _, err := q.nodes[l].CreateTopic(CreateTopic{Name: "wide", Partitions: 1, ReplicationFactor: 4}); !IsCode(err, kerr.InvalidReplicationFactor) {
		t.Fatalf("replication factor 4 on 3 brokers: %v, want INVALID_REPLICATION_FACTOR", err)
	}
	im := metadata.NewImage()
	q.nodes[l].View(func(cur *metadata.Image) { im = cur.Clone() })
	if len(im.Brokers) != 3 {
		t.Fatalf("registered brokers: %+v, want 3", im.Brokers)
	}
	var leaders []int32
	for _, p := range im.Topics["orders"].Partitions {
		leaders = append(leaders, p.Leader)
	}
	if slices.Sort(leaders); !slices.Equal(leaders, []int32{1, 2, 3}) {
		t.Fatalf("3 partitions on 3 brokers have leaders %v, want one each", leaders)
	}
	q.converged(l)
	follower := (l + 1) % 3
	_, _, err := q.nodes[follower].CreateTopic(CreateTopic{Name: "other", Partitions: 1, ReplicationFactor: 1})
	if !IsCode(err, kerr.NotController) || !strings.Contains(err.Error(), fmt.Sprintf("node %d is", l+1)) {
		t.Fatalf("create on a follower: %v, want NOT_CONTROLLER naming node %d", err, l+1)
	}
}

func TestQuorumSurvivesTheLossOfItsLeaderAndTheNodeCatchesUp(t *testing.T) {
	defer func(k uint64) { keepEntries = k }(keepEntries)
	keepEntries = 5
	q := newTestQuorum(t, 3, map[string]string{"metadata.log.max.record.bytes.between.snapshots": "2048"})
	l := q.leader()
	if _, _, err := q.nodes[l].CreateTopic(CreateTopic{Name: "before", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	q.stop(l)
	l2 := q.leader()
	if l2 == l {
		t.Fatal("a stopped node leads")
	}
	// Enough changes while the old leader is away that the others take
	// snapshots; it catches up from the log or from a snapshot.
	for i := range 40 {
		if _, _, err := q.nodes[l2].CreateTopic(CreateTopic{Name: fmt.Sprintf("during-%d", i), Partitions: 2, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	q.start(l)
	img := q.converged(q.leader())
	if !strings.Contains(string(img), "during-39") || !strings.Contains(string(img), "before") {
		t.Fatalf("image lacks topics: %s", img)
	}
	if n := q.nodes[l].store.(*quorum).snapshotsInstalled.Load(); n == 0 {
		t.Fatal("the returning node caught up without the snapshot its peers' trimmed logs require")
	}
	// A restart of every node replays from its snapshot to the same image.
	for i := range q.nodes {
		q.stop(i)
	}
	for i := range q.nodes {
		q.start(i)
	}
	if got := q.converged(q.leader()); string(got) != string(img) {
		t.Fatalf("image after a full restart differs:\n got %s\nwant %s", got, img)
	}
}

func TestQuorumWithoutAMajorityRefusesChangesAndHasNoController(t *testing.T) {
	for _, survivorLed := range []bool{false, true} {
		t.Run(fmt.Sprintf("survivor was leader %v", survivorLed), func(t *testing.T) {
			q := newTestQuorum(t, 3, nil)
			l := q.leader()
			survivor := (l + 1) % 3
			if survivorLed {
				survivor = l
			}
			for i := range q.nodes {
				if i != survivor {
					q.stop(i)
				}
			}
			// A leader that cannot hear a majority steps down (CheckQuorum);
			// a follower forgets its leader when its election timer fires.
			deadline := time.Now().Add(10 * time.Second)
			for q.nodes[survivor].ControllerID() != -1 {
				if time.Now().After(deadline) {
					t.Fatalf("the lone survivor still names controller %d", q.nodes[survivor].ControllerID())
				}
				time.Sleep(20 * time.Millisecond)
			}
			_, _, err := q.nodes[survivor].CreateTopic(CreateTopic{Name: "t", Partitions: 1, ReplicationFactor: 1})
			if !IsCode(err, kerr.NotController) || !strings.Contains(err.Error(), "no leader") {
				t.Fatalf("create without a majority: %v, want NOT_CONTROLLER saying the quorum has no leader", err)
			}
		})
	}
}

func TestQuorumDataDirectoryIsNotOpenedAlone(t *testing.T) {
	q := newTestQuorum(t, 3, nil)
	q.stop(0)
	if _, err := Open(q.dirs[0], 1, config.NewBroker(), nil); err == nil || !strings.Contains(err.Error(), "--voters") {
		t.Fatalf("opening a cluster node's data alone: %v, want a refusal", err)
	}
}

// isolate cuts node i off from the others in both directions; heal
// reconnects everyone.
func (q *testQuorum) isolate(i int) {
	for j, c := range q.nodes {
		if c == nil {
			continue
		}
		cut := map[uint64]bool{uint64(i + 1): true}
		if j == i {
			cut = map[uint64]bool{}
			for k := range q.nodes {
				if k != i {
					cut[uint64(k+1)] = true
				}
			}
		}
		c.store.(*quorum).tr.blocked.Store(&cut)
	}
}

func (q *testQuorum) heal() {
	for _, c := range q.nodes {
		if c != nil {
			c.store.(*quorum).tr.blocked.Store(nil)
		}
	}
}

func TestQuorumIsolatedLeaderStepsDownAndItsUncommittedChangeIsDiscarded(t *testing.T) {
	defer func(d time.Duration) { proposalTimeout = d }(proposalTimeout)
	proposalTimeout = 1500 * time.Millisecond
	q := newTestQuorum(t, 3, nil)
	old := q.leader()
	q.isolate(old)

	// The cut-off leader appends a change it can never commit.
	_, _, err := q.nodes[old].CreateTopic(CreateTopic{Name: "lost", Partitions: 1, ReplicationFactor: 1})
	switch {
	case IsCode(err, kerr.RequestTimedOut), IsCode(err, kerr.NotController) && strings.Contains(err.Error(), "while the change was pending"):
		if !storedEntryMentions(t, q.nodes[old], `"lost"`) {
			t.Fatalf("the change that ended with %v is not in the isolated leader's stored log", err)
		}
	case IsCode(err, kerr.NotController):
		t.Log("the isolated leader stepped down before the proposal; its log holds nothing to discard")
	default:
		t.Fatalf("change on an isolated leader: %v, want REQUEST_TIMED_OUT", err)
	}

	// The majority elects another leader and carries on.
	a, b := (old+1)%3, (old+2)%3
	deadline := time.Now().Add(10 * time.Second)
	var next int
	for {
		ia, ib := q.nodes[a].ControllerID(), q.nodes[b].ControllerID()
		if ia == ib && (ia == int32(a+1) || ia == int32(b+1)) {
			next = int(ia) - 1
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the majority did not elect a leader: nodes name %d and %d", ia, ib)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := q.nodes[next].CreateTopic(CreateTopic{Name: "kept", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	// CheckQuorum: the isolated node no longer claims to lead.
	for q.nodes[old].ControllerID() == int32(old+1) {
		if time.Now().After(deadline) {
			t.Fatal("the isolated node still claims to be the controller")
		}
		time.Sleep(20 * time.Millisecond)
	}

	q.heal()
	img := string(q.converged(q.leader()))
	if !strings.Contains(img, `"kept"`) || strings.Contains(img, `"lost"`) {
		t.Fatalf("after healing, want kept and not lost: %s", img)
	}
	// The overwritten tail is gone from its disk too.
	q.stop(old)
	q.start(old)
	var after string
	q.converged(q.leader())
	q.nodes[old].View(func(im *metadata.Image) { after = string(im.Encode()) })
	if after != img {
		t.Fatalf("after a restart the node holds\n%s\nwant\n%s", after, img)
	}
	if storedEntryMentions(t, q.nodes[old], `"lost"`) {
		t.Fatal("the discarded change is still in the node's stored log")
	}
}

// A follower's change is forwarded to the leader it knows; when that
// leader dies with the entry, the change's caller hears of it as soon as
// the quorum's leader changes, not when the proposal times out: it holds
// the controller's write lock meanwhile, and the follower may be the next
// controller, whose heartbeat handling would wait behind it until the
// brokers' sessions expired (every live broker fenced).
func TestQuorumForwardedChangeLostWithItsLeaderEndsWhenTheLeaderChanges(t *testing.T) {
	defer func(d time.Duration) { proposalTimeout = d }(proposalTimeout)
	proposalTimeout = time.Minute
	q := newTestQuorum(t, 3, nil)
	old := q.leader()
	follower := (old + 1) % 3
	q.isolate(old)
	start := time.Now()
	_, err := q.nodes[follower].AllocateProducerIDs(1000)
	if err == nil {
		t.Fatal("a change forwarded to a leader cut off from everyone was committed")
	}
	if !IsCode(err, kerr.NotController) {
		t.Fatalf("forwarded change lost with its leader: %v (after %v), want NOT_CONTROLLER once the leader changed", err, time.Since(start))
	}
	// The next controller, whichever it is, commits at once.
	a, b := (old+1)%3, (old+2)%3
	deadline := time.Now().Add(10 * time.Second)
	for {
		ia, ib := q.nodes[a].ControllerID(), q.nodes[b].ControllerID()
		if ia == ib && (ia == int32(a+1) || ia == int32(b+1)) {
			if _, err := q.nodes[follower].AllocateProducerIDs(1000); err != nil {
				t.Fatalf("allocation after the change of leader: %v", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the majority did not elect a leader: nodes name %d and %d", ia, ib)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storedEntryMentions reports whether an entry in c's raft store holds s.
func storedEntryMentions(t *testing.T, c *Controller, s string) bool {
	t.Helper()
	_, _, ents, err := c.store.(*quorum).store.load()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(string(e.GetData()), s) {
			return true
		}
	}
	return false
}

func TestQuorumLeaderHandsOverWhenItCloses(t *testing.T) {
	q := newTestQuorum(t, 3, map[string]string{"controller.quorum.election.timeout.ms": "1500"})
	l := q.leader()
	start := time.Now()
	q.stop(l)
	next := q.leader()
	// Without a hand-over the others would wait out an election timeout
	// (1.5 s) before they even campaign.
	if d := time.Since(start); d > 1100*time.Millisecond {
		t.Fatalf("node %d led %v after node %d closed; a hand-over takes a few ticks", next+1, d, l+1)
	}
	if _, _, err := q.nodes[next].CreateTopic(CreateTopic{Name: "after", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatsAreAnsweredByTheActiveControllerOnly(t *testing.T) {
	q := newTestQuorum(t, 3, nil)
	l := q.leader()
	follower := (l + 1) % 3
	var epoch, applied int64
	q.nodes[l].View(func(im *metadata.Image) { epoch, applied = im.Brokers[int32(follower+1)].Epoch, im.Offset })
	hb := Heartbeat{NodeID: int32(follower + 1), Epoch: epoch, AppliedOffset: applied}
	if _, err := q.nodes[follower].BrokerHeartbeat(hb); !IsCode(err, kerr.NotController) {
		t.Fatalf("heartbeat to a follower: %v; want NOT_CONTROLLER", err)
	}
	stale := hb
	stale.Epoch--
	if _, err := q.nodes[l].BrokerHeartbeat(stale); !IsCode(err, kerr.StaleBrokerEpoch) {
		t.Fatalf("heartbeat of another registration: %v; want STALE_BROKER_EPOCH", err)
	}
	res, err := q.nodes[l].BrokerHeartbeat(hb)
	if err != nil || res.Fenced || !res.CaughtUp || res.ShouldShutdown {
		t.Fatalf("heartbeat of an unfenced broker: %+v, %v", res, err)
	}
	hb.WantShutdown = true
	res, err = q.nodes[l].BrokerHeartbeat(hb)
	if err != nil || !res.Fenced || !res.ShouldShutdown {
		t.Fatalf("heartbeat asking to shut down (it leads nothing): %+v, %v; want fenced and allowed to shut down", res, err)
	}
}
