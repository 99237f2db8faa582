package partition

// Replication, as the partition sees it. A partition is either its
// partition's leader or a follower of the leader on another node; the
// metadata decides which (SetLeader, BecomeFollower) and the broker moves
// the data: a follower fetches from the leader and appends what it gets
// with AppendReplica, truncating first where its log diverged (TruncateTo,
// KIP-101/279); the leader hears of every follower fetch (UpdateFollower).
//
// Weir acknowledges an acks=all write only once it is fsynced on every
// in-sync replica, so a follower fetches only after fsyncing what it
// fetched before: its fetch offset is the offset below which it is
// durable. The leader's high watermark is the smallest of its own flushed
// offset and the fetch offsets of the other ISR members, and it does not
// advance while the ISR is smaller than min.insync.replicas (KIP-966's
// strict rule: an ISR shrunk to fewer members acknowledges nothing, rather
// than fewer copies). A follower's high watermark is the smaller of what
// the leader sent it and its own flushed offset.
//
// A follower the leader proposes to add to the ISR counts for the high
// watermark from the moment it is proposed (Kafka's maximal ISR,
// KIP-497): once the controller commits it, an election may pick it, so
// no write may be acknowledged that it lacks. One the leader proposes to
// drop counts until the controller has committed its removal.
//
// The inputs of the high watermark (the flushed offset, the followers'
// offsets, the ISR, the leader's high watermark) change under wmu, and
// every change goes through publishHWLocked, the one place the high
// watermark moves up.

import (
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	wlog "github.com/weir-broker/weir/internal/log"
)

// role is whether the partition leads or follows.
type role int

const (
	roleLeader role = iota
	roleFollower
)

// ErrNotLeader refuses a client write to, or a wait on, a partition this
// node does not lead (NOT_LEADER_OR_FOLLOWER).
var ErrNotLeader = fmt.Errorf("%w: this replica is not the leader", kerr.NotLeaderForPartition)

// ErrNotFollower refuses a replica append or a truncation on the leader:
// only a follower takes its log from another replica.
var ErrNotFollower = fmt.Errorf("%w: this replica is the leader", kerr.NotLeaderForPartition)

// follower is what a leader knows of one follower (Kafka's remote replica
// state).
type follower struct {
	// fetchOffset is the offset of its last fetch: it is durable below
	// it. -1 until it fetches under the current leadership.
	fetchOffset int64
	// lastCaughtUpMs is the last time its log reached the leader's log
	// end as it was at some fetch; lastFetchLeaderEnd and lastFetchMs
	// are that end and that time for its previous fetch.
	lastCaughtUpMs     int64
	lastFetchLeaderEnd int64
	lastFetchMs        int64
	// logStart is the log start offset it sent with its last fetch, -1
	// until it sends one (low_watermark.go).
	logStart int64
	// brokerEpoch is the broker epoch its fetches carry (KIP-903), -1
	// when they carry none: what is known of the follower is known of
	// that incarnation of its broker only.
	brokerEpoch int64
}

// newFollower is a follower the leader knows nothing of yet.
func newFollower() *follower {
	return &follower{fetchOffset: -1, lastFetchLeaderEnd: -1, logStart: -1, brokerEpoch: -1}
}

// highWatermarkLocked is what the high watermark's inputs allow now;
// publishHWLocked takes it only when it is higher. p.wmu is held.
func (p *Partition) highWatermarkLocked() int64 {
	if p.role == roleFollower {
		return min(p.flushed, p.leaderHW)
	}
	if len(p.isr) < p.minISR {
		return p.hw.Load()
	}
	hw := p.flushed
	for _, id := range p.maximalISRLocked() {
		if id == p.opts.ReplicaID {
			continue
		}
		f := p.followers[id]
		if f == nil || f.fetchOffset < 0 {
			// An in-sync follower that has not fetched since this
			// leadership began may lack anything above the old high
			// watermark.
			return p.hw.Load()
		}
		hw = min(hw, f.fetchOffset)
	}
	return hw
}

// maximalISRLocked is every replica the high watermark waits for: the
// committed ISR and those proposed to join it. p.wmu is held.
func (p *Partition) maximalISRLocked() []int32 {
	if p.proposedISR == nil {
		return p.isr
	}
	out := slices.Clone(p.isr)
	for _, id := range p.proposedISR {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// ProposeISR records the ISR the leader is about to ask the controller
// for, if every member it adds is caught up (CaughtUp at nowMs, with
// lagMaxMs) as it counts: from now on they count for the high watermark,
// before the controller can commit them (and an election pick them), so
// none lacks a write acknowledged from here on. It reports whether the
// ISR was recorded; a refused one must not be proposed. It lasts until
// the metadata gives the leader an ISR (SetLeader) or the proposal is
// refused (WithdrawISRProposal). Only the leader proposes.
func (p *Partition) ProposeISR(isr []int32, nowMs, lagMaxMs int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.role != roleLeader {
		return false
	}
	for _, id := range isr {
		if id != p.opts.ReplicaID && !slices.Contains(p.isr, id) && !p.caughtUpLocked(id, nowMs, lagMaxMs) {
			return false
		}
	}
	p.proposedISR = slices.Clone(isr)
	return true
}

// WithdrawISRProposal forgets the proposed ISR after the controller
// refused it: the committed ISR alone counts again, and the high
// watermark may move at once.
func (p *Partition) WithdrawISRProposal() {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.proposedISR = nil
	p.publishHWLocked()
}

// SetLeader makes this replica the leader at epoch with the ISR the
// metadata gives (which includes this replica, Options.ReplicaID).
// Batches appended from now on carry the epoch, whose start is made
// durable first; on an error the old epoch and role stay. A new epoch or a
// change of role starts the followers afresh, and so does leaving the
// ISR: nothing is assumed of what they hold until they fetch. An ISR member the leader knows nothing of
// counts as caught up now, so that it is not dropped from the ISR before
// it could fetch. The high watermark stays where it was and moves as they
// fetch; a smaller ISR may let it move at once. The ISR given replaces any
// proposed one: a proposal made before it acted on an older partition
// epoch, so the controller either committed it already (and the ISR
// shows it) or refuses it.
func (p *Partition) SetLeader(epoch int32, isr []int32) error {
	nowMs := p.now().UnixMilli()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.startEpochLocked(epoch); err != nil {
		return err
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.role != roleLeader || epoch != p.leaderEpoch {
		clear(p.followers)
	}
	// A follower the ISR has lost is assumed to hold nothing until it
	// fetches again: the controller removes a broker that registered
	// again (a restart, perhaps without its log), and what its previous
	// incarnation fetched must not bring it straight back (the hazard
	// KIP-903 closes with broker epochs in fetches).
	for _, id := range p.isr {
		if !slices.Contains(isr, id) {
			delete(p.followers, id)
		}
	}
	for _, id := range isr {
		if _, ok := p.followers[id]; !ok && id != p.opts.ReplicaID {
			f := newFollower()
			f.lastCaughtUpMs = nowMs
			p.followers[id] = f
		}
	}
	p.role, p.leaderEpoch, p.isr = roleLeader, epoch, slices.Clone(isr)
	p.proposedISR = nil
	p.publishHWLocked()
	return nil
}

// BecomeFollower makes this replica a follower of the leader at epoch.
// Client appends are refused from now on (ErrNotLeader), and so is every
// acks=all wait, those already waiting too: once deposed, this replica
// cannot know whether the new leader's ISR holds the write, and its own
// copy may yet be truncated. No leader epoch is started: the epochs a
// follower records are those of the batches it copies. Its high
// watermark stays until the leader sends one (SetFollowerHW).
func (p *Partition) BecomeFollower(epoch int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.role == roleLeader {
		p.leaderHW = p.hw.Load()
		for _, w := range p.waiters {
			w.ch <- ErrNotLeader
		}
		p.waiters = nil
	}
	p.role, p.leaderEpoch, p.isr, p.proposedISR = roleFollower, epoch, nil, nil
	clear(p.followers)
	p.notifyLowLocked() // a DeleteRecords waiting on it ends NOT_LEADER_OR_FOLLOWER
}

// IsLeader reports whether this replica leads the partition.
func (p *Partition) IsLeader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.role == roleLeader
}

// ISR is the in-sync replica set, as the metadata last gave it to the
// leader; nil on a follower.
func (p *Partition) ISR() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.isr)
}

// SetMinISR sets the topic's min.insync.replicas (at least 1). Raising it
// above the ISR's size stops the high watermark; lowering it may let it
// move at once.
func (p *Partition) SetMinISR(n int) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.minISR = max(n, 1)
	p.publishHWLocked()
}

// UnderMinISR reports whether the leader's ISR is smaller than
// min.insync.replicas: an acks=all write is then refused before it is
// appended (NOT_ENOUGH_REPLICAS), as its high watermark cannot pass it.
func (p *Partition) UnderMinISR() bool {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.role == roleLeader && len(p.isr) < p.minISR
}

// FollowerFetch is a leader's answer to UpdateFollower.
type FollowerFetch struct {
	// HighWatermark, LogStartOffset and LogEndOffset are the leader's,
	// after the fetch was counted: what the fetch response carries.
	HighWatermark  int64
	LogStartOffset int64
	LogEndOffset   int64
	// Diverged is set when the follower's log is not a prefix of the
	// leader's at the fetch offset (KIP-320's diverging epoch): nothing
	// was counted, and the follower must truncate to DivergingEndOffset
	// (or to where its own DivergingEpoch ends, if lower) and fetch again.
	Diverged           bool
	DivergingEpoch     int32
	DivergingEndOffset int64
}

// UpdateFollower counts one fetch of follower replica, from the
// incarnation of its broker at brokerEpoch (-1: not known), at
// fetchOffset, the offset below which the follower's log is fsynced, whose
// last batch was
// of lastFetchedEpoch (-1: the follower has no batch, or its fetch
// request predates KIP-320), at nowMs. It is how the leader learns what
// the follower holds: the high watermark moves up to it when the follower
// is in the ISR, and the follower's caught-up time (OutOfSyncReplicas,
// CaughtUp) follows Kafka's rule: a fetch at the leader's log end catches
// the follower up at its own time, and a fetch at or past the log end of
// the follower's previous fetch at that fetch's time. A fetch from a new
// incarnation of the follower's broker forgets what the previous one
// fetched: the broker may have come back without its log.
//
// A fetch from a log that diverged from this one is answered with where
// it diverged and not counted; a fetch offset outside this log is
// wlog.ErrOffsetOutOfRange, and on a follower ErrNotLeader.
func (p *Partition) UpdateFollower(replica int32, brokerEpoch, fetchOffset int64, lastFetchedEpoch int32, nowMs int64) (FollowerFetch, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != roleLeader {
		return FollowerFetch{}, ErrNotLeader
	}
	start, end := p.log.StartOffset(), p.log.EndOffset()
	res := FollowerFetch{LogStartOffset: start, LogEndOffset: end}
	if lastFetchedEpoch >= 0 {
		epoch, epochEnd := p.epochs.endOffsetFor(lastFetchedEpoch, end)
		if epoch < lastFetchedEpoch || epochEnd < fetchOffset {
			res.Diverged, res.DivergingEpoch, res.DivergingEndOffset = true, epoch, epochEnd
			res.HighWatermark = p.hw.Load()
			return res, nil
		}
	}
	if fetchOffset < start || fetchOffset > end {
		return res, fmt.Errorf("%w: follower %d fetches at %d, the log holds [%d, %d]", wlog.ErrOffsetOutOfRange, replica, fetchOffset, start, end)
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	f := p.followers[replica]
	if f == nil || (brokerEpoch >= 0 && f.brokerEpoch >= 0 && brokerEpoch != f.brokerEpoch) {
		f = newFollower()
		p.followers[replica] = f
	}
	if brokerEpoch >= 0 {
		f.brokerEpoch = brokerEpoch
	}
	switch {
	case fetchOffset >= end:
		f.lastCaughtUpMs = max(f.lastCaughtUpMs, nowMs)
	case f.lastFetchLeaderEnd >= 0 && fetchOffset >= f.lastFetchLeaderEnd:
		f.lastCaughtUpMs = max(f.lastCaughtUpMs, f.lastFetchMs)
	}
	f.fetchOffset, f.lastFetchLeaderEnd, f.lastFetchMs = fetchOffset, end, nowMs
	p.publishHWLocked()
	res.HighWatermark = p.hw.Load()
	return res, nil
}

// FollowerBrokerEpoch is the broker epoch follower replica's fetches
// carried under this leadership, -1 when none did.
func (p *Partition) FollowerBrokerEpoch(replica int32) int64 {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if f := p.followers[replica]; f != nil {
		return f.brokerEpoch
	}
	return -1
}

// OutOfSyncReplicas lists the ISR's followers that have not caught up
// with the leader's log end within lagMaxMs of nowMs
// (replica.lag.time.max.ms), nor hold it now: those the leader proposes
// to drop from the ISR.
func (p *Partition) OutOfSyncReplicas(nowMs, lagMaxMs int64) []int32 {
	end := p.log.EndOffset()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.role != roleLeader {
		return nil
	}
	var out []int32
	for _, id := range p.isr {
		if id == p.opts.ReplicaID {
			continue
		}
		f := p.followers[id]
		if f == nil || (f.fetchOffset != end && nowMs-f.lastCaughtUpMs > lagMaxMs) {
			out = append(out, id)
		}
	}
	return out
}

// CaughtUp reports whether follower replica may join the ISR at nowMs: it
// holds, fsynced, everything below the high watermark and below the start
// of the leader's current epoch (so what it has is this leader's history,
// not a branch it would have to truncate), and it caught up with the
// leader's log end within lagMaxMs (replica.lag.time.max.ms), as an ISR
// member must. The last condition keeps out a follower that stopped
// fetching: one that is the reason the high watermark stands still would
// otherwise look caught up forever.
func (p *Partition) CaughtUp(replica int32, nowMs, lagMaxMs int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.caughtUpLocked(replica, nowMs, lagMaxMs)
}

// caughtUpLocked is CaughtUp; p.mu and p.wmu are held.
func (p *Partition) caughtUpLocked(replica int32, nowMs, lagMaxMs int64) bool {
	if p.role != roleLeader || len(p.epochs) == 0 {
		return false
	}
	epochStart := p.epochs[len(p.epochs)-1].start
	f := p.followers[replica]
	return f != nil && f.fetchOffset >= 0 && f.fetchOffset >= p.hw.Load() && f.fetchOffset >= epochStart &&
		nowMs-f.lastCaughtUpMs <= lagMaxMs
}

// SetFollowerHW takes the high watermark the leader sent with a fetch
// response: the follower's own is the smaller of it and the offset below
// which its log is fsynced, and it never moves back (only a truncation
// lowers it). On the leader it is ErrNotFollower.
func (p *Partition) SetFollowerHW(leaderHW int64) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.role != roleFollower {
		return ErrNotFollower
	}
	p.leaderHW = max(p.leaderHW, leaderHW)
	p.publishHWLocked()
	return nil
}

// WatchEnd registers ch to receive a non-blocking send whenever the log
// end or the log start moves: a replica fetch waiting at the leader's log
// end waits on it.
// UnwatchEnd removes it.
func (p *Partition) WatchEnd(ch chan<- struct{}) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, ok := p.endWatchers[ch]; !ok {
		p.endWatchers[ch] = struct{}{}
		p.nEndWatchers.Add(1)
	}
}

// UnwatchEnd stops notifications to ch.
func (p *Partition) UnwatchEnd(ch chan<- struct{}) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, ok := p.endWatchers[ch]; ok {
		delete(p.endWatchers, ch)
		p.nEndWatchers.Add(-1)
	}
}

// notifyEnd wakes the end watchers after an append; with none it costs
// an atomic load.
func (p *Partition) notifyEnd() {
	if p.nEndWatchers.Load() == 0 {
		return
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for ch := range p.endWatchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// errReplicaBatch wraps what is wrong with data a follower was asked to
// append.
var errReplicaBatch = errors.New("replica append")
