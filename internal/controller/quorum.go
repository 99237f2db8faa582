package controller

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/metadata"
)

// QuorumDirName is the directory, inside the data directory, that holds a
// cluster node's share of the replicated metadata log.
const QuorumDirName = "__cluster_metadata-raft"

const (
	// tickInterval is one Raft tick; elections and heartbeats count them.
	tickInterval = 100 * time.Millisecond
	// applyQueueLen bounds the Readies handed to the applier.
	applyQueueLen = 64
)

// proposalTimeout bounds the wait for a change to be committed and
// applied; past it the change is answered REQUEST_TIMED_OUT (it may still
// take effect, as with Kafka). Tests shorten it.
var proposalTimeout = 5 * time.Second

// keepEntries is how many applied entries a snapshot leaves in the log,
// so a follower a little behind gets entries, not the snapshot. Tests
// lower it to make lagging nodes catch up from a snapshot.
var keepEntries uint64 = 500

// snapshotOnJoin makes a snapshot follow each learner's configuration
// change (quorum_apply.go). Tests turn it off so that a restart replays
// the change from the log.
var snapshotOnJoin = true

// quorum is the metadata log replicated by Raft (go.etcd.io/raft): the
// library decides; this package stores (raftstore.go), sends
// (transport.go), drives (quorum_driver.go) and applies (quorum_apply.go).
//
// Goroutines: the driver (run) alone touches the RawNode and the storage;
// the applier (applyLoop) alone writes the image, in log order; the
// transport's goroutines move messages. Proposers wait for their entry to
// be applied locally.
type quorum struct {
	c      *Controller
	id     uint64
	voters []uint64
	// brokerOnly: this node is not a voter but a learner (join.go),
	// reachable by the voters at listen.
	brokerOnly bool
	listen     string
	store      *raftStore
	mem        *raft.MemoryStorage
	rn         *raft.RawNode
	conf       *pb.ConfState
	tr         *transport        // nil in the simulation
	send       func(*pb.Message) // the transport's, or the simulation's
	inline     bool              // driven by hand: apply as Readies are handled

	leader   atomic.Uint64 // the leader this node knows, 0 when none
	isLeader atomic.Bool
	// leaderGen counts the times this node became the leader: state kept
	// only by the active controller (the liveness table) is started
	// afresh for each.
	leaderGen atomic.Uint64
	failed    atomic.Pointer[error] // a storage failure stopped the driver

	propc     chan *proposal
	transferc chan struct{}
	recvc     chan *pb.Message
	reportc   chan peerReport
	snapc     chan snapRequest
	applyc    chan applyTask
	statusc   chan chan QuorumStatus // status.go

	startOnce sync.Once
	started   chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// Proposals of this process are known by (node, nonce, seq); the
	// nonce keeps an earlier incarnation's entries from matching.
	nonce   uint64
	seq     atomic.Uint64
	waitMu  sync.Mutex
	waiters map[uint64]*waiter

	// snapshotsInstalled counts snapshots from the leader that replaced
	// the image (for tests).
	snapshotsInstalled atomic.Int64

	electionTimeout time.Duration

	// Owned by the driver: the voters' responses while this node leads
	// (status.go), and a broker-only node's requests to join (join.go).
	seen      map[uint64]*peerSeen
	joinTicks int
	joinAsked int

	// Owned by the applier.
	snapIndex      uint64
	bytesSinceSnap int64
	snapEveryBytes int64
}

// waiter is a proposal of this process waiting to be applied.
type waiter struct {
	done chan error
	// proposed: the driver handed the entry to the Raft node, so a
	// change of leader may lose it (set and read by the driver under
	// waitMu).
	proposed bool
}

// answer tells the waiter its outcome unless it has one already.
func (w *waiter) answer(err error) {
	select {
	case w.done <- err:
	default:
	}
}

type proposal struct {
	seq  uint64
	data []byte
	done chan error
	// forward lets a follower propose: the library hands the entry to
	// the leader (MsgProp over the transport). Only for records that fit
	// any image, as they are not planned on the leader.
	forward bool
}

type snapRequest struct {
	index uint64
	data  []byte
	// learners are the quorum's learners at index (the image's).
	learners []uint64
}

// applyTask is one Ready's share for the applier: a snapshot to install,
// then committed entries.
type applyTask struct {
	snap    *pb.Snapshot
	entries []*pb.Entry
}

// entryData is a proposal as stored in a Raft entry.
type entryData struct {
	Node    int32             `json:"node"`
	Nonce   uint64            `json:"nonce"`
	Seq     uint64            `json:"seq"`
	Records []metadata.Record `json:"records"`
}

func openQuorum(c *Controller, dataDir string, qc config.Quorum) (*quorum, error) {
	q, err := newQuorum(c, dataDir, qc, false)
	if err != nil {
		return nil, err
	}
	// Voters come from the configuration, learners from the image.
	peers := make(map[uint64]string)
	for id, addr := range c.image.Learners {
		peers[uint64(id)] = addr
	}
	for _, v := range qc.Voters {
		peers[uint64(v.ID)] = v.Addr
	}
	q.tr, err = newTransport(q.id, qc.Listen, c.transportTLS, q.voters, peers, q.deliver, q.reportPeer, c.logger)
	if err != nil {
		q.store.close()
		return nil, err
	}
	q.send = q.tr.send
	role := "voter"
	if q.brokerOnly {
		role = "learner (broker only)"
	}
	c.logger.Info("metadata quorum member started", "node", q.id, "role", role, "voters", qc.VoterIDs(), "controller_listen", q.tr.ln.Addr().String(), "applied", c.image.Offset)
	q.wg.Add(4)
	go q.run()
	go q.applyLoop()
	go c.livenessLoop(q)
	go c.rebalanceLoop(q)
	return q, nil
}

// newQuorum opens the stored log and builds the Raft node, but starts no
// goroutine and sends nothing: openQuorum adds the transport, the driver
// and the applier; the simulation drives it by hand (inline), with
// committed entries applied as each Ready is handled.
func newQuorum(c *Controller, dataDir string, qc config.Quorum, inline bool) (*quorum, error) {
	if _, err := os.Stat(filepath.Join(dataDir, LogDirName)); err == nil {
		return nil, fmt.Errorf("%s holds the metadata log of a single node (%s); moving it into a cluster is not supported", dataDir, LogDirName)
	}
	dir := filepath.Join(dataDir, QuorumDirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	store, err := openRaftStore(filepath.Join(dir, "raft.db"), inline)
	if err != nil {
		return nil, err
	}
	q := &quorum{
		c: c, id: uint64(qc.NodeID), brokerOnly: qc.BrokerOnly, listen: qc.Listen, store: store, mem: raft.NewMemoryStorage(), inline: inline,
		propc: make(chan *proposal), transferc: make(chan struct{}), recvc: make(chan *pb.Message, 1024),
		reportc: make(chan peerReport, 64), snapc: make(chan snapRequest, 1),
		applyc: make(chan applyTask, applyQueueLen), statusc: make(chan chan QuorumStatus), started: make(chan struct{}), stop: make(chan struct{}),
		waiters:        make(map[uint64]*waiter),
		snapEveryBytes: c.cfg.Int("metadata.log.max.record.bytes.between.snapshots"),
	}
	for _, id := range qc.VoterIDs() {
		q.voters = append(q.voters, uint64(id))
	}
	var nb [8]byte
	_, _ = rand.Read(nb[:])
	q.nonce = binary.BigEndian.Uint64(nb[:])
	confChanges, err := q.recover()
	if err != nil {
		store.close()
		return nil, err
	}
	q.electionTimeout = time.Duration(c.cfg.Int("controller.quorum.election.timeout.ms")) * time.Millisecond
	electionTicks := int(q.electionTimeout / tickInterval)
	q.rn, err = raft.NewRawNode(&raft.Config{
		ID:              q.id,
		ElectionTick:    max(electionTicks, 2),
		HeartbeatTick:   1,
		Storage:         q.mem,
		Applied:         uint64(c.image.Offset),
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		// A leader that cannot hear a majority steps down, so a node cut
		// off from the quorum stops claiming to be the controller; pre-vote
		// keeps a returning node from disrupting a healthy leader.
		CheckQuorum: true,
		PreVote:     true,
		Logger:      raftLogger{c.logger},
	})
	if err != nil {
		store.close()
		return nil, fmt.Errorf("raft: %w", err)
	}
	// The library takes the configuration from the snapshot and counts
	// the replayed entries as applied: the changes among them are applied
	// here again.
	for _, e := range confChanges {
		q.applyConfChange(e)
	}
	return q, nil
}

// recover loads the stored log (bootstrapping an empty one with the
// voters) and applies every entry known committed, so Open returns the
// image as of the last commit this node saw. It returns the configuration
// changes among the entries it replayed, for the Raft node to apply.
func (q *quorum) recover() ([]*pb.Entry, error) {
	snap, hs, ents, err := q.store.load()
	if err != nil {
		return nil, err
	}
	if snap == nil && hs == nil && len(ents) == 0 {
		// Every voter starts from the same snapshot: index 1, term 1, the
		// voters as the configuration and an empty image. The library
		// recommends this over bootstrapping through conf-change entries.
		snap = &pb.Snapshot{Data: metadata.NewImage().Encode(), Metadata: &pb.SnapshotMetadata{
			Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &pb.ConfState{Voters: q.voters},
		}}
		hs = &pb.HardState{Term: new(uint64(1)), Commit: new(uint64(1))}
		if err := q.store.save(hs, nil, snap); err != nil {
			return nil, fmt.Errorf("bootstrap the metadata quorum: %w", err)
		}
	}
	if snap == nil {
		return nil, fmt.Errorf("raft store has entries but no snapshot")
	}
	stored := slices.Sorted(slices.Values(snap.GetMetadata().GetConfState().GetVoters()))
	// A data directory keeps its role: a voter's log holds its votes and
	// promises, a learner's does not, so neither can stand in for the other.
	switch wasVoter := slices.Contains(stored, q.id); {
	case wasVoter && q.brokerOnly:
		return nil, fmt.Errorf("node %d's metadata was written as a voter of the quorum %v; it cannot restart as a broker-only node (a learner) with the same data directory", q.id, stored)
	case !wasVoter && !q.brokerOnly && slices.Equal(stored, slices.DeleteFunc(slices.Clone(q.voters), func(id uint64) bool { return id == q.id })):
		return nil, fmt.Errorf("node %d's metadata was written as a broker-only node (a learner) of the quorum %v; it cannot restart as a voter with the same data directory", q.id, stored)
	}
	if !slices.Equal(stored, q.voters) {
		return nil, fmt.Errorf("controller.quorum.voters names nodes %v, but this node's metadata was written by a quorum of %v: changing the voters is not supported", q.voters, stored)
	}
	q.conf = snap.GetMetadata().GetConfState()
	if err := q.mem.ApplySnapshot(snap); err != nil {
		return nil, err
	}
	if hs != nil {
		if err := q.mem.SetHardState(hs); err != nil {
			return nil, err
		}
	}
	if err := q.mem.Append(ents); err != nil {
		return nil, err
	}
	si := snap.GetMetadata().GetIndex()
	im, err := metadata.DecodeImage(snap.GetData(), int64(si))
	if err != nil {
		return nil, err
	}
	q.c.image = im
	q.snapIndex = si
	var confChanges []*pb.Entry
	last, _ := q.mem.LastIndex()
	if commit := min(hs.GetCommit(), last); commit > si {
		replay, err := q.mem.Entries(si+1, commit+1, math.MaxUint64)
		if err != nil {
			return nil, fmt.Errorf("replay the metadata log: %w", err)
		}
		for _, e := range replay {
			q.applyEntry(e)
			if e.GetType() == pb.EntryConfChange {
				confChanges = append(confChanges, e)
			}
		}
	}
	return confChanges, nil
}

// start lets the applier apply what was committed after Open.
func (q *quorum) start() { q.startOnce.Do(func() { close(q.started) }) }

func (q *quorum) controllerID() int32 {
	if l := q.leader.Load(); l != 0 {
		return int32(l)
	}
	return -1
}

func (q *quorum) deliver(m *pb.Message) {
	select {
	case q.recvc <- m:
	case <-q.stop:
	}
}

func (q *quorum) reportPeer(r peerReport) {
	select {
	case q.reportc <- r:
	default:
	}
}

func (q *quorum) notController() error {
	if l := q.leader.Load(); l != 0 && l != q.id {
		return fail(kerr.NotController, "node %d is not the active controller; node %d is", q.id, l)
	}
	return fail(kerr.NotController, "node %d is not the active controller and knows of none: the metadata quorum %v has no leader (is a majority of it running?)", q.id, q.voters)
}

// commit proposes recs on this node, which must lead the quorum, and waits
// until the entry is applied here.
func (q *quorum) commit(recs []metadata.Record) error {
	return q.propose(recs, false, nil)
}

// propose proposes recs and waits until the entry is applied here. With
// forward, a follower may propose too (the library forwards the entry to
// the leader); a forwarded proposal lost on the way times out. Closing
// cancel gives up the wait (the entry may still be applied).
func (q *quorum) propose(recs []metadata.Record, forward bool, cancel <-chan struct{}) error {
	if errp := q.failed.Load(); errp != nil {
		return fail(kerr.KafkaStorageError, "metadata quorum stopped: %v", *errp)
	}
	if !forward && !q.isLeader.Load() {
		return q.notController()
	}
	seq := q.seq.Add(1)
	data, err := json.Marshal(entryData{Node: int32(q.id), Nonce: q.nonce, Seq: seq, Records: recs})
	if err != nil {
		return err
	}
	p := &proposal{seq: seq, data: data, done: make(chan error, 1), forward: forward}
	q.waitMu.Lock()
	q.waiters[seq] = &waiter{done: p.done}
	q.waitMu.Unlock()
	defer func() {
		q.waitMu.Lock()
		delete(q.waiters, seq)
		q.waitMu.Unlock()
	}()
	timer := time.NewTimer(proposalTimeout)
	defer timer.Stop()
	timedOut := fail(kerr.RequestTimedOut, "metadata change not committed within %v: the quorum %v may have lost its majority", proposalTimeout, q.voters)
	select {
	case q.propc <- p:
	case <-timer.C:
		return timedOut
	case <-cancel:
		return fail(kerr.RequestTimedOut, "metadata change given up")
	case <-q.stop:
		return fail(kerr.NotController, "controller is shutting down")
	}
	select {
	case err := <-p.done:
		return err
	case <-timer.C:
		return timedOut
	case <-cancel:
		return fail(kerr.RequestTimedOut, "metadata change given up")
	case <-q.stop:
		return fail(kerr.NotController, "controller is shutting down")
	}
}

func (q *quorum) close() error {
	q.closeOnce.Do(func() {
		// A leader shutting down hands its leadership over first, so the
		// quorum has a controller again at once rather than after an
		// election timeout.
		// A quorum of one has no one to hand over to.
		if q.tr != nil && len(q.voters) > 1 && q.isLeader.Load() && q.failed.Load() == nil {
			deadline := time.Now().Add(q.electionTimeout)
			select {
			case q.transferc <- struct{}{}:
				for q.isLeader.Load() && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			case <-time.After(q.electionTimeout):
			}
		}
		close(q.stop)
		if q.tr != nil {
			q.closeErr = q.tr.close()
		}
		q.wg.Wait()
		if err := q.store.close(); q.closeErr == nil {
			q.closeErr = err
		}
	})
	return q.closeErr
}
