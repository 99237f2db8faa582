package controller

// Broker heartbeats (KIP-631) as the active controller receives them, and
// the loop that fences brokers whose heartbeats stopped. The decisions
// themselves are planMembership's (membership.go); this file reads the
// clock and commits what it plans.

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// Heartbeat is one broker heartbeat: the registration it comes from
// (node and broker epoch), the metadata offset the broker has applied,
// and what the broker asks for.
type Heartbeat struct {
	NodeID        int32
	Epoch         int64
	AppliedOffset int64
	// WantFence keeps the broker fenced (it is not ready to serve).
	WantFence bool
	// WantShutdown asks for a controlled shutdown: the broker's
	// leaderships are moved away and it is fenced.
	WantShutdown bool
}

// HeartbeatResult is the answer to a heartbeat, as of the image after any
// change the heartbeat caused.
type HeartbeatResult struct {
	// CaughtUp: the broker has applied the metadata up to its
	// registration.
	CaughtUp bool
	Fenced   bool
	// ShouldShutdown: the controlled shutdown the broker asked for is
	// done; it leads nothing.
	ShouldShutdown bool
}

// livenessState is the active controller's liveness table and what it
// belongs to. Lock order: writeMu, then mu, then liveMu; liveMu is never
// held across I/O.
type livenessState struct {
	liveMu sync.Mutex
	table  *liveness
	gen    uint64 // the quorum's leadership generation the table is for
}

// livenessLocked returns the table for this node's current term as the
// controller, starting an empty one when this node has become the
// controller since the last call.
func (c *Controller) livenessLocked(q *quorum, now time.Time) *liveness {
	if gen := q.leaderGen.Load(); c.live.table == nil || c.live.gen != gen {
		c.live.table = newLiveness(time.Duration(c.cfg.Int("broker.session.timeout.ms")) * time.Millisecond)
		c.live.gen = gen
	}
	return c.live.table
}

// BrokerHeartbeat records a heartbeat on the active controller and
// commits what it changes: a broker that has caught up is unfenced, one
// asking to shut down is fenced and its leaderships moved. Any other node
// answers NOT_CONTROLLER; a heartbeat of a registration the image does
// not hold is STALE_BROKER_EPOCH.
func (c *Controller) BrokerHeartbeat(hb Heartbeat) (HeartbeatResult, error) {
	q, ok := c.store.(*quorum)
	if !ok {
		return HeartbeatResult{}, fail(kerr.InvalidRequest, "a single node has no broker heartbeats")
	}
	if !q.isLeader.Load() {
		return HeartbeatResult{}, q.notController()
	}
	var br metadata.Broker
	var registered bool
	c.View(func(im *metadata.Image) { br, registered = im.Brokers[hb.NodeID] })
	if !registered || br.Epoch != hb.Epoch {
		return HeartbeatResult{}, fail(kerr.StaleBrokerEpoch, "node %d has no registration at broker epoch %d (the image holds %d)", hb.NodeID, hb.Epoch, br.Epoch)
	}
	now := time.Now()
	c.live.liveMu.Lock()
	c.livenessLocked(q, now).heard(now, hb.NodeID, hb.Epoch, hb.AppliedOffset, hb.WantFence, hb.WantShutdown)
	c.live.liveMu.Unlock()
	if err := c.reconcile(q); err != nil {
		return HeartbeatResult{}, err
	}
	var res HeartbeatResult
	c.View(func(im *metadata.Image) {
		br, registered = im.Brokers[hb.NodeID]
		res.CaughtUp = hb.AppliedOffset >= br.Epoch
		res.Fenced = !registered || br.Fenced
		res.ShouldShutdown = registered && br.ControlledShutdown && !leadsAny(im, hb.NodeID)
	})
	if !registered || br.Epoch != hb.Epoch {
		return HeartbeatResult{}, fail(kerr.StaleBrokerEpoch, "node %d registered again while its heartbeat was handled", hb.NodeID)
	}
	return res, nil
}

// uncleanElection reports whether a topic may elect a leader outside its
// ISR (unclean.leader.election.enable, topic override or broker default).
func (c *Controller) uncleanElection(t *metadata.Topic) bool {
	return c.cfg.Topic(t.Configs)["unclean.leader.election.enable"] == "true"
}

// planNow plans membership records against im with the liveness table as
// of now.
func (c *Controller) planNow(im *metadata.Image, q *quorum) []metadata.Record {
	now := time.Now()
	c.live.liveMu.Lock()
	defer c.live.liveMu.Unlock()
	table := c.livenessLocked(q, now)
	return planMembership(im, func(br metadata.Broker) brokerLiveness { return table.state(now, br) }, c.uncleanElection)
}

// reconcile commits the membership records the image needs now, if any.
// Most calls find none and take no lock but the image's read lock.
func (c *Controller) reconcile(q *quorum) error {
	var needed bool
	c.View(func(im *metadata.Image) { needed = len(c.planNow(im, q)) > 0 })
	if !needed {
		return nil
	}
	var recs []metadata.Record
	err := c.change(func(im *metadata.Image) ([]metadata.Record, error) {
		recs = c.planNow(im, q)
		return recs, nil
	})
	if err != nil {
		return err
	}
	for _, r := range recs {
		switch {
		case r.BrokerChange != nil:
			ch := r.BrokerChange
			c.logger.Info("broker state changed", "node", ch.NodeID, "broker_epoch", ch.Epoch, "fenced", ch.Fenced, "controlled_shutdown", ch.ControlledShutdown)
		case r.Partition != nil:
			p := r.Partition
			c.logger.Debug("partition leadership changed", "topic_id", p.TopicID.String(), "partition", p.Index, "leader", p.Leader, "leader_epoch", p.LeaderEpoch, "isr", p.ISR)
		}
	}
	return nil
}

// livenessLoop fences, on the active controller, brokers whose sessions
// expire, checking a few times per session timeout.
func (c *Controller) livenessLoop(q *quorum) {
	defer q.wg.Done()
	select {
	case <-q.started:
	case <-q.stop:
		return
	}
	session := time.Duration(c.cfg.Int("broker.session.timeout.ms")) * time.Millisecond
	ticker := time.NewTicker(min(max(session/10, 20*time.Millisecond), 500*time.Millisecond))
	defer ticker.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-ticker.C:
		}
		if !q.isLeader.Load() || q.failed.Load() != nil {
			continue
		}
		if err := c.reconcile(q); err != nil {
			c.logger.Debug("broker liveness change not committed; trying again", "err", err)
		}
	}
}
