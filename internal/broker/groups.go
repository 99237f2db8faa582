package broker

// The driver of the group coordinator: internal/group holds the state
// machines, one group.Shard per __consumer_offsets partition; this file
// does their I/O. Calls into a shard are serialised by its mutex, held
// while its appends are written to the partition (so records land in the
// order the shard emitted them) but never across an fsync: durability is
// awaited on goroutines that report back with AppendDone.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/partition"
)

// minTickInterval bounds how often a shard's timer fires.
const minTickInterval = 10 * time.Millisecond

// errCoordinatorClosed answers requests still waiting when the broker
// shuts down; the connection is closed and the client retries elsewhere.
var errCoordinatorClosed = errors.New("group coordinator closed")

// groupCoordinator is the group coordinator of this node: one shard per
// __consumer_offsets partition it leads (coordinator_shards.go).
type groupCoordinator struct {
	b   *Broker
	cfg group.Config
	set *shardSet[*groupShard]
}

// groupShard is one shard and its I/O. mu guards every field but part.
type groupShard struct {
	part    *partition.Partition
	mu      sync.Mutex
	m       *group.Shard
	token   uint64
	waiting map[uint64]chan kmsg.Response
	timer   *time.Timer
	closed  bool
	// guard is the verification of the TxnOffsetCommit being stepped
	// (stepVerified), which its transactional append must pass.
	guard *partition.TxnGuard
}

func newGroupCoordinator(b *Broker) *groupCoordinator {
	s := b.settings
	gc := &groupCoordinator{b: b, cfg: group.Config{
		InitialRebalanceDelayMs: s.Int("group.initial.rebalance.delay.ms"),
		MinSessionTimeoutMs:     int32(s.Int("group.min.session.timeout.ms")),
		MaxSessionTimeoutMs:     int32(s.Int("group.max.session.timeout.ms")),
		MaxGroupSize:            int(s.Int("group.max.size")),
		OffsetsRetentionMs:      s.Int("offsets.retention.minutes") * 60_000,
		RetentionCheckMs:        s.Int("offsets.retention.check.interval.ms"),
		MaxMetadataBytes:        int(s.Int("offset.metadata.max.bytes")),
		NewID:                   newMemberIDSuffix,

		ConsumerSessionTimeoutMs:    s.Int("group.consumer.session.timeout.ms"),
		ConsumerHeartbeatIntervalMs: s.Int("group.consumer.heartbeat.interval.ms"),
		ConsumerAssignors:           consumerAssignors(s.Get("group.consumer.assignors")),
	}}
	gc.set = newShardSet(b, internalTopic{
		name:              group.OffsetsTopic,
		partitions:        int32(s.Int("offsets.topic.num.partitions")),
		replicationFactor: int16(s.Int("offsets.topic.replication.factor")),
		configs: map[string]string{
			"cleanup.policy": "compact",
			"segment.bytes":  strconv.FormatInt(s.Int("offsets.topic.segment.bytes"), 10),
		},
	}, gc.openShard)
	return gc
}

// newMemberIDSuffix returns a random UUID, as Kafka's member ids carry.
func newMemberIDSuffix() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func nowMs() int64 { return time.Now().UnixMilli() }

// shardFor returns the shard of a group. Without create, a missing
// __consumer_offsets gives a nil shard: nothing is stored yet. Errors
// carry NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or
// COORDINATOR_NOT_AVAILABLE.
func (gc *groupCoordinator) shardFor(groupID string, create bool) (*groupShard, error) {
	s, err := gc.set.get(groupID, create)
	if errors.Is(err, errNoState) {
		return nil, nil
	}
	return s, err
}

// completeTxn ends producer pid's transactional offsets in the shard of
// __consumer_offsets partition index, once its marker is durable there.
// A shard not loaded here has nothing to end: it replays the marker when
// it loads.
func (gc *groupCoordinator) completeTxn(index int32, pid int64, commit bool) {
	if s, err := gc.set.shard(index); err == nil {
		s.completeTxn(pid, commit)
	}
}

// openShard replays a partition into a new shard and starts its timer.
func (gc *groupCoordinator) openShard(part *partition.Partition) (*groupShard, error) {
	s := &groupShard{part: part, m: group.NewShard(gc.cfg), waiting: map[uint64]chan kmsg.Response{}}
	err := replayPartition(part, func(b []byte, h batch.Header) error {
		gc.replayBatch(s, part, b, h)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.timer = time.AfterFunc(time.Hour, s.tick)
	s.mu.Lock()
	s.applyLocked(s.m.Loaded(nowMs()))
	s.mu.Unlock()
	return s, nil
}

// replayBatch applies one batch's records. A record the coordinator did
// not write (nothing but the coordinator should write here) is logged and
// skipped rather than keeping the broker from starting.
func (gc *groupCoordinator) replayBatch(s *groupShard, part *partition.Partition, b []byte, h batch.Header) {
	if h.Control() {
		commit, err := batch.IsCommitMarker(b)
		if err != nil {
			gc.b.logger.Error("group coordinator: skipping unreadable marker", "partition", part.Index, "offset", h.BaseOffset, "err", err)
			return
		}
		s.m.ReplayMarker(h.ProducerID, commit)
		return
	}
	recs, err := batch.Records(b)
	if err != nil {
		gc.b.logger.Error("group coordinator: skipping unreadable batch", "partition", part.Index, "offset", h.BaseOffset, "err", err)
		return
	}
	replay := s.m.Replay
	if h.Transactional() {
		replay = func(key, value []byte) error { return s.m.ReplayTxn(h.ProducerID, key, value) }
	}
	for i, r := range recs {
		if err := replay(r.Key, r.Value); err != nil {
			gc.b.logger.Error("group coordinator: skipping record", "partition", part.Index, "offset", h.BaseOffset+int64(r.OffsetDelta), "index", i, "err", err)
		}
	}
}

// completeTxn ends producer pid's transactional offsets in the shard
// after the marker is durable there.
func (s *groupShard) completeTxn(pid int64, commit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.applyLocked(s.m.CompleteTxn(nowMs(), pid, commit))
	}
}

// unload stops the shard: requests still waiting are failed (their
// connections closed, so clients look the coordinator up again).
func (s *groupShard) unload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	for tok, ch := range s.waiting {
		close(ch)
		delete(s.waiting, tok)
	}
}

// step hands a request to the shard; the channel yields its response, or
// is closed if the coordinator shuts down first.
func (s *groupShard) step(in group.Input) <-chan kmsg.Response { return s.stepVerified(in, nil) }

// stepVerified is step for a TxnOffsetCommit the transaction coordinator
// confirmed after guard was taken on the shard's partition: the shard
// writes the offsets while it steps, and the write is refused
// (INVALID_TXN_STATE) if the transaction's marker reached the partition
// since guard was taken.
func (s *groupShard) stepVerified(in group.Input, guard *partition.TxnGuard) <-chan kmsg.Response {
	ch := make(chan kmsg.Response, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		close(ch)
		return ch
	}
	s.token++
	in.Token = s.token
	s.waiting[in.Token] = ch
	s.guard = guard
	s.applyLocked(s.m.Step(nowMs(), in))
	s.guard = nil
	return ch
}

func (s *groupShard) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.applyLocked(s.m.Tick(nowMs()))
	}
}

func (s *groupShard) appendDone(id uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.applyLocked(s.m.AppendDone(nowMs(), id, err))
	}
}

// applyLocked carries out a Ready: appends, then responses, then the timer.
func (s *groupShard) applyLocked(rd group.Ready) {
	for _, a := range rd.Appends {
		s.appendLocked(a)
	}
	for _, r := range rd.Responses {
		if ch, ok := s.waiting[r.Token]; ok {
			ch <- r.Msg
			delete(s.waiting, r.Token)
		}
	}
	if rd.Deadline == 0 {
		s.timer.Stop()
		return
	}
	s.timer.Reset(max(time.Duration(rd.Deadline-nowMs())*time.Millisecond, minTickInterval))
}

// appendLocked writes one Append as a batch and reports it to the shard
// once durable, from another goroutine (the shard's lock is held here).
func (s *groupShard) appendLocked(a group.Append) {
	recs := make([]batch.Record, len(a.Records))
	for i, r := range a.Records {
		recs[i] = batch.Record{Key: r.Key, Value: r.Value}
	}
	spec := batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	if a.Txn != nil {
		// A TxnOffsetCommit's records, pending until the marker.
		spec.Attributes, spec.ProducerID, spec.ProducerEpoch = batch.AttrTransactional, a.Txn.ID, a.Txn.Epoch
	}
	durable, err := appendInternal(s.part, spec, recs, s.guard)
	if err != nil {
		go s.appendDone(a.ID, err)
		return
	}
	go func() { s.appendDone(a.ID, <-durable) }()
}
