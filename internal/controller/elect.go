package controller

// Leader elections on request (ElectLeaders, KIP-183 and KIP-460) and the
// automatic return of leadership to preferred replicas
// (auto.leader.rebalance.enable). Both are planned by pure functions of
// the image and of which brokers may lead, like planMembership, and make
// their records with leaderChange, as automatic elections do, so a new
// leader always comes with a new leader epoch and partition epoch.
//
//   - PREFERRED elects a partition's preferred replica, the first of its
//     assignment, when it is live and in the ISR; ELECTION_NOT_NEEDED when
//     it leads already, PREFERRED_LEADER_NOT_AVAILABLE otherwise.
//   - UNCLEAN elects, for a partition whose leader is not live, a live ISR
//     member if there is one and else a live replica outside the ISR,
//     which becomes the whole ISR (the writes only the lost ISR held are
//     gone); ELECTION_NOT_NEEDED while the leader is live,
//     ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica is live. It is the
//     operator's explicit choice, so unclean.leader.election.enable does
//     not gate it (as in Kafka).

import (
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// ElectionType is the kind of election an ElectLeaders request asks for
// (KIP-460).
type ElectionType int8

// Election types, numbered as on the wire.
const (
	ElectPreferred ElectionType = 0
	ElectUnclean   ElectionType = 1
)

func (t ElectionType) String() string {
	switch t {
	case ElectPreferred:
		return "preferred"
	case ElectUnclean:
		return "unclean"
	}
	return fmt.Sprintf("election type %d", int8(t))
}

// maxElectionsPerRebalance bounds the leaderships one automatic rebalance
// moves in one metadata batch; the rest move at the next check.
const maxElectionsPerRebalance = 1000

// ElectTarget names one partition to elect a leader for.
type ElectTarget struct {
	Topic     string
	Partition int32
}

// ElectResult is the outcome of one partition's election: Err nil when a
// leader was elected.
type ElectResult struct {
	Topic     string
	Partition int32
	Err       *kerr.Error
	Msg       string
	// Leader is the partition's leader after the election, or its
	// current one when there was none.
	Leader int32
}

// planElections plans the elections of typ for targets, or for every
// partition when targets is nil; then, as in Kafka, partitions that need
// no election are left out of the answer. mayLead says which brokers are
// live. A partition named twice is elected once and answered once.
func planElections(im *metadata.Image, typ ElectionType, targets []ElectTarget, mayLead func(int32) bool) ([]metadata.Record, []ElectResult) {
	all := targets == nil
	if all {
		for _, name := range im.TopicNames() {
			for i := range im.Topics[name].Partitions {
				targets = append(targets, ElectTarget{Topic: name, Partition: int32(i)})
			}
		}
	}
	var recs []metadata.Record
	var results []ElectResult
	seen := make(map[ElectTarget]bool, len(targets))
	for _, tg := range targets {
		if seen[tg] {
			continue
		}
		seen[tg] = true
		res := ElectResult{Topic: tg.Topic, Partition: tg.Partition, Leader: -1}
		t := im.Topics[tg.Topic]
		if t == nil || tg.Partition < 0 || int(tg.Partition) >= len(t.Partitions) {
			res.Err, res.Msg = kerr.UnknownTopicOrPartition, fmt.Sprintf("topic %q has no partition %d", tg.Topic, tg.Partition)
			results = append(results, res)
			continue
		}
		p := t.Partitions[tg.Partition]
		res.Leader = p.Leader
		rec, err, msg := electOne(p, typ, mayLead)
		if err == kerr.ElectionNotNeeded && all {
			continue
		}
		res.Err, res.Msg = err, msg
		if err == nil {
			rec.TopicID, rec.Index = t.ID, tg.Partition
			recs = append(recs, metadata.Record{Partition: &rec})
			res.Leader = rec.Leader
		}
		results = append(results, res)
	}
	return recs, results
}

// electOne is one partition's election of typ: the record that makes it,
// or the error code and message that say why there is none.
func electOne(p metadata.Partition, typ ElectionType, mayLead func(int32) bool) (metadata.PartitionRecord, *kerr.Error, string) {
	switch typ {
	case ElectPreferred:
		if len(p.Replicas) == 0 {
			return metadata.PartitionRecord{}, kerr.PreferredLeaderNotAvailable, "the partition has no replicas"
		}
		pref := p.Replicas[0]
		switch {
		case p.Leader == pref:
			return metadata.PartitionRecord{}, kerr.ElectionNotNeeded, fmt.Sprintf("the preferred replica %d leads already", pref)
		case !mayLead(pref):
			return metadata.PartitionRecord{}, kerr.PreferredLeaderNotAvailable, fmt.Sprintf("the preferred replica %d is not live", pref)
		case !slices.Contains(p.ISR, pref):
			return metadata.PartitionRecord{}, kerr.PreferredLeaderNotAvailable, fmt.Sprintf("the preferred replica %d is not in the ISR %v", pref, p.ISR)
		}
		rec, _ := leaderChange(p, pref, p.ISR)
		return rec, nil, ""
	case ElectUnclean:
		if p.Leader != -1 && mayLead(p.Leader) {
			return metadata.PartitionRecord{}, kerr.ElectionNotNeeded, fmt.Sprintf("the leader %d is live", p.Leader)
		}
		rec, ok := electLeader(p, nil, mayLead, mayLead, true)
		if !ok || rec.Leader == -1 {
			return metadata.PartitionRecord{}, kerr.EligibleLeadersNotAvailable, fmt.Sprintf("no replica of %v is live", p.Replicas)
		}
		return rec, nil, ""
	}
	return metadata.PartitionRecord{}, kerr.InvalidRequest, fmt.Sprintf("unknown election type %d", int8(typ))
}

// planRebalance returns the preferred-replica elections that bring
// leadership back into balance, by Kafka's rule: a broker is imbalanced
// when, of the partitions it is the preferred replica of, more than
// percent per cent are led by another broker; each of those is elected
// back where its preferred replica is live and in the ISR, unless it is
// being reassigned. At most maxElectionsPerRebalance records are
// returned.
func planRebalance(im *metadata.Image, percent int64, mayLead func(int32) bool) []metadata.Record {
	preferred := make(map[int32]int64) // partitions per preferred replica
	notLed := make(map[int32]int64)    // of those, led by another broker
	for _, name := range im.TopicNames() {
		for _, p := range im.Topics[name].Partitions {
			if len(p.Replicas) == 0 {
				continue
			}
			pref := p.Replicas[0]
			preferred[pref]++
			if p.Leader != pref {
				notLed[pref]++
			}
		}
	}
	var targets []ElectTarget
	for _, name := range im.TopicNames() {
		for i, p := range im.Topics[name].Partitions {
			if len(p.Replicas) == 0 || p.Leader == p.Replicas[0] || p.Reassigning() {
				continue // a move in progress hands its leadership over itself (reassign.go)
			}
			pref := p.Replicas[0]
			if notLed[pref]*100 > percent*preferred[pref] {
				targets = append(targets, ElectTarget{Topic: name, Partition: int32(i)})
			}
		}
	}
	if len(targets) == 0 {
		return nil
	}
	recs, _ := planElections(im, ElectPreferred, targets, mayLead)
	if len(recs) > maxElectionsPerRebalance {
		recs = recs[:maxElectionsPerRebalance]
	}
	return recs
}

// mayLeadIn returns which brokers of im may be given a leadership: the
// registered, unfenced brokers not shutting down; alone, this node.
func (c *Controller) mayLeadIn(im *metadata.Image) func(int32) bool {
	if !c.Clustered() {
		return func(id int32) bool { return id == c.nodeID }
	}
	return func(id int32) bool {
		br, ok := im.Brokers[id]
		return ok && !br.Fenced && !br.ControlledShutdown
	}
}

// ElectLeaders runs the elections of typ for targets (nil: every
// partition) on the active controller (NOT_CONTROLLER elsewhere) and
// answers each partition.
func (c *Controller) ElectLeaders(typ ElectionType, targets []ElectTarget) ([]ElectResult, error) {
	if typ != ElectPreferred && typ != ElectUnclean {
		return nil, fail(kerr.InvalidRequest, "unknown election type %d", int8(typ))
	}
	if q, ok := c.store.(*quorum); ok && !q.isLeader.Load() {
		return nil, q.notController()
	}
	var results []ElectResult
	var before, after int64
	err := c.change(func(im *metadata.Image) ([]metadata.Record, error) {
		var recs []metadata.Record
		recs, results = planElections(im, typ, targets, c.mayLeadIn(im))
		before = im.UncleanElections
		return recs, nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		if r.Err == nil {
			c.logger.Info("leader elected on request", "election", typ.String(), "topic", r.Topic, "partition", r.Partition, "leader", r.Leader)
		}
	}
	c.View(func(im *metadata.Image) { after = im.UncleanElections })
	if typ == ElectUnclean && after > before {
		c.logger.Warn("unclean leader election: the writes only the lost ISR held are gone", "unclean_elections_total", after)
	}
	return results, nil
}

// rebalanceLoop moves leadership back to preferred replicas on the active
// controller every leader.imbalance.check.interval.seconds while
// auto.leader.rebalance.enable is set.
func (c *Controller) rebalanceLoop(q *quorum) {
	defer q.wg.Done()
	if !c.cfg.Bool("auto.leader.rebalance.enable") {
		return
	}
	select {
	case <-q.started:
	case <-q.stop:
		return
	}
	ticker := time.NewTicker(time.Duration(c.cfg.Int("leader.imbalance.check.interval.seconds")) * time.Second)
	defer ticker.Stop()
	percent := c.cfg.Int("leader.imbalance.per.broker.percentage")
	for {
		select {
		case <-q.stop:
			return
		case <-ticker.C:
		}
		if !q.isLeader.Load() || q.failed.Load() != nil {
			continue
		}
		var recs []metadata.Record
		err := c.change(func(im *metadata.Image) ([]metadata.Record, error) {
			recs = planRebalance(im, percent, c.mayLeadIn(im))
			return recs, nil
		})
		if err != nil {
			c.logger.Debug("leader rebalance not committed; trying again at the next check", "err", err)
			continue
		}
		for _, r := range recs {
			p := r.Partition
			c.logger.Info("leadership returned to the preferred replica", "topic_id", p.TopicID.String(), "partition", p.Index, "leader", p.Leader, "leader_epoch", p.LeaderEpoch)
		}
	}
}
