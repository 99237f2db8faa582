package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/metadata"
)

// observers is the learners the leader reports, each with its log end
// offset.
func (q *testQuorum) observers(leader int) map[int32]int64 {
	q.t.Helper()
	st, err := q.nodes[leader].QuorumStatus(context.Background())
	if err != nil {
		q.t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, o := range st.Observers {
		out[o.NodeID] = o.LogEndOffset
	}
	var voters []int32
	for _, v := range st.Voters {
		voters = append(voters, v.NodeID)
	}
	if !slices.Equal(voters, []int32{1, 2, 3}) {
		q.t.Fatalf("voters %v, want [1 2 3]", voters)
	}
	return out
}

func TestQuorumBrokerOnlyNodeJoinsAsALearnerGetsTheLogAndNeverLeads(t *testing.T) {
	q := newTestQuorumWithLearners(t, 3, 1, nil)
	l := q.leader()
	if l == 3 {
		t.Fatal("the broker-only node leads")
	}
	if obs := q.observers(l); len(obs) != 1 || obs[4] < 1 {
		t.Fatalf("the leader's observers are %v; want node 4 with its log end offset", obs)
	}
	if _, _, err := q.nodes[l].CreateTopic(CreateTopic{Name: "seen-by-the-learner", Partitions: 8, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	img := q.converged(l)
	var leaders []int32
	q.nodes[3].View(func(im *metadata.Image) {
		for _, p := range im.Topics["seen-by-the-learner"].Partitions {
			leaders = append(leaders, p.Leader)
		}
		if im.Learners[4] != q.addrs[3] {
			t.Errorf("the image records learners %v; want node 4 at %s", im.Learners, q.addrs[3])
		}
	})
	if !slices.Contains(leaders, 4) {
		t.Fatalf("partition leaders %v: none on the broker-only node", leaders)
	}

	// The learner does not count towards a majority: with two voters of
	// three down, one voter and the learner elect nobody.
	q.stop(l)
	q.stop((l + 1) % 3)
	survivor := (l + 2) % 3
	deadline := time.Now().Add(5 * time.Second)
	for q.nodes[survivor].ControllerID() != -1 || q.nodes[3].ControllerID() == 4 {
		if time.Now().After(deadline) {
			t.Fatalf("voter %d names controller %d and the learner %d with a minority of the voters", survivor+1, q.nodes[survivor].ControllerID(), q.nodes[3].ControllerID())
		}
		time.Sleep(20 * time.Millisecond)
	}
	q.start(l)
	next := q.leader()
	if next == 3 {
		t.Fatal("the broker-only node leads")
	}
	if _, _, err := q.nodes[next].CreateTopic(CreateTopic{Name: "after-election", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if got := q.converged(next); len(got) <= len(img) {
		t.Fatalf("image did not grow: %s", got)
	}
}

func TestQuorumLearnerSurvivesRestartsOfEveryNode(t *testing.T) {
	for _, fromLog := range []bool{false, true} {
		t.Run(fmt.Sprintf("change replayed from the log %v", fromLog), func(t *testing.T) {
			defer func(v bool) { snapshotOnJoin = v }(snapshotOnJoin)
			snapshotOnJoin = !fromLog
			q := newTestQuorumWithLearners(t, 3, 1, nil)
			q.leader()
			for i := range q.nodes {
				q.stop(i)
			}
			for i := range q.nodes {
				q.start(i)
			}
			// Every node restores the configuration, from the snapshot or
			// by replaying the change: the voters send the learner the log
			// again. The learner, a member in its own log, waits before
			// asking again; on a loaded machine it may ask once more, which
			// changes nothing (it is already a learner).
			l := q.leader()
			if _, _, err := q.nodes[l].CreateTopic(CreateTopic{Name: "after-restart", Partitions: 2, ReplicationFactor: 1}); err != nil {
				t.Fatal(err)
			}
			q.converged(l)
			if obs := q.observers(l); len(obs) != 1 {
				t.Fatalf("observers %v after the restart", obs)
			}
			if n := storedConfChanges(t, q.nodes[l]); n < 1 {
				t.Fatalf("the log holds %d configuration changes; want the learner's", n)
			}
		})
	}
}

// storedConfChanges counts the configuration changes in c's stored log,
// trimmed or not.
func storedConfChanges(t *testing.T, c *Controller) int {
	t.Helper()
	n := 0
	err := c.store.(*quorum).store.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEntries).ForEach(func(_, v []byte) error {
			e := &pb.Entry{}
			if err := proto.Unmarshal(v, e); err != nil {
				return err
			}
			if e.GetType() == pb.EntryConfChange {
				n++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestQuorumLearnerJoiningLateGetsASnapshotThatIncludesIt(t *testing.T) {
	defer func(k uint64) { keepEntries = k }(keepEntries)
	keepEntries = 2
	q := newTestQuorumWithLearners(t, 3, 1, map[string]string{"metadata.log.max.record.bytes.between.snapshots": "200"})
	l := q.leader()
	q.stop(3)
	for i := range 10 {
		if _, _, err := q.nodes[l].CreateTopic(CreateTopic{Name: fmt.Sprintf("t%d", i), Partitions: 1, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// A new learner, on an empty data directory, whose log the leader
	// trimmed long ago.
	q.dirs = append(q.dirs, t.TempDir())
	q.addrs = append(q.addrs, freeAddr(t))
	q.nodes = append(q.nodes, nil)
	q.start(4)
	l = q.leader()
	q.converged(l)
	if n := q.nodes[4].store.(*quorum).snapshotsInstalled.Load(); n == 0 {
		t.Fatal("the late learner caught up without a snapshot; the test did not trim the log")
	}
	q.start(3)
	q.leader()
	q.converged(l)
}

func TestQuorumDataDirectoryKeepsItsRole(t *testing.T) {
	q := newTestQuorumWithLearners(t, 3, 1, nil)
	q.leader()
	q.stop(2)
	q.stop(3)
	open := func(dir string, id int32, voters string) error {
		cfg := config.NewBroker()
		for k, v := range map[string]string{"node.id": fmt.Sprint(id), "controller.quorum.voters": voters, "controller.listeners": freeAddr(t)} {
			if err := cfg.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		c, err := Open(dir, id, cfg, nil)
		if err == nil {
			c.Close()
		}
		return err
	}
	two := strings.Join(strings.Split(q.voters, ",")[:2], ",")
	if err := open(q.dirs[2], 3, two); err == nil || !strings.Contains(err.Error(), "cannot restart as a broker-only node") {
		t.Fatalf("voter 3 restarted as a broker-only node: %v", err)
	}
	four := q.voters + ",4@" + q.addrs[3]
	if err := open(q.dirs[3], 4, four); err == nil || !strings.Contains(err.Error(), "cannot restart as a voter") {
		t.Fatalf("broker-only node 4 restarted as a voter: %v", err)
	}
	if err := open(q.dirs[3], 4, two); err == nil || !strings.Contains(err.Error(), "changing the voters is not supported") {
		t.Fatalf("broker-only node 4 restarted with other voters: %v", err)
	}
}

func TestOnlyAJoinIsAcceptedAsAConfigurationChange(t *testing.T) {
	voters := map[uint64]bool{1: true, 2: true, 3: true}
	cc := func(typ pb.ConfChangeType, node uint64, ctx string) []byte {
		b, err := proto.Marshal(&pb.ConfChange{Type: typ.Enum(), NodeId: new(node), Context: []byte(ctx)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	prop := func(from uint64, ents ...*pb.Entry) *pb.Message {
		return &pb.Message{Type: pb.MsgProp.Enum(), From: new(from), To: new(uint64(1)), Entries: ents}
	}
	entry := func(typ pb.EntryType, data []byte) *pb.Entry { return &pb.Entry{Type: typ.Enum(), Data: data} }
	for _, tc := range []struct {
		name string
		m    *pb.Message
		join bool
		err  string
	}{
		{"a join", joinMessage(4, 1, "127.0.0.1:9194"), true, ""},
		{"an ordinary proposal", prop(2, entry(pb.EntryNormal, []byte("{}"))), false, ""},
		{"a voter joining as a learner", prop(3, entry(pb.EntryConfChange, cc(pb.ConfChangeAddLearnerNode, 3, "127.0.0.1:1"))), false, "it is a voter"},
		{"a node adding another", prop(4, entry(pb.EntryConfChange, cc(pb.ConfChangeAddLearnerNode, 5, "127.0.0.1:1"))), false, "adds only itself"},
		{"adding a voter", prop(4, entry(pb.EntryConfChange, cc(pb.ConfChangeAddNode, 4, "127.0.0.1:1"))), false, "voters are fixed"},
		{"removing a voter", prop(1, entry(pb.EntryConfChange, cc(pb.ConfChangeRemoveNode, 1, ""))), false, "voters are fixed"},
		{"an address that is not host:port", prop(4, entry(pb.EntryConfChange, cc(pb.ConfChangeAddLearnerNode, 4, "nowhere"))), false, "not host:port"},
		{"a change among other entries", prop(4, entry(pb.EntryNormal, nil), entry(pb.EntryConfChange, cc(pb.ConfChangeAddLearnerNode, 4, "127.0.0.1:1"))), false, "alone"},
		{"a V2 change", prop(4, entry(pb.EntryConfChangeV2, nil)), false, "only adding a learner"},
		{"undecodable", prop(4, entry(pb.EntryConfChange, []byte{0xff, 0xff})), false, "undecodable"},
	} {
		join, err := isJoin(tc.m, voters)
		if join != tc.join || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: join %v, %v; want %v, an error saying %q", tc.name, join, err, tc.join, tc.err)
		}
	}
}

// syncBuffer is a log sink safe for the controller's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestQuorumBrokerOnlyNodeThatNoVoterReachesSaysSo(t *testing.T) {
	defer func(n int) { joinWarnEvery = n }(joinWarnEvery)
	joinWarnEvery = 2
	voters := fmt.Sprintf("1@%s,2@%s,3@%s", freeAddr(t), freeAddr(t), freeAddr(t)) // nobody listens
	cfg := config.NewBroker()
	for k, v := range map[string]string{"node.id": "4", "controller.quorum.voters": voters, "controller.listeners": freeAddr(t)} {
		if err := cfg.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncBuffer
	c, err := Open(t.TempDir(), 4, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetListener(nil)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "broker-only node not yet in the metadata quorum") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning that the voters do not answer; logs:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id := c.ControllerID(); id != -1 {
		t.Fatalf("a broker-only node no voter reached names controller %d", id)
	}
}
