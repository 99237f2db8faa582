package broker

// The leader keeps its partitions' ISR true to what the followers hold
// (KIP-497): a follower that has not caught up with the log end for
// replica.lag.time.max.ms leaves it, one that holds everything below the
// high watermark of the leader's current epoch joins it. The leader
// proposes each change to the active controller (AlterPartition, with the
// leader epoch and partition epoch it acts on); the ISR takes effect once
// the change comes back in the image (reconcile). Until then the high
// watermark counts the ISR and the followers proposed to join it (the
// maximal ISR, partition.ProposeISR), so it never leaves out a follower
// the controller may have recorded and an election may pick.

import (
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
)

// isrLoop checks the ISR of the partitions this node leads, a few times
// per replica.lag.time.max.ms.
func (b *Broker) isrLoop() {
	defer b.wg.Done()
	lagMax := b.settings.Int("replica.lag.time.max.ms")
	interval := max(time.Duration(lagMax)*time.Millisecond/4, 50*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			if changes, parts := b.isrChanges(lagMax); len(changes) > 0 {
				b.proposeISR(changes, parts, lagMax)
			}
		}
	}
}

// isrChanges lists the ISR changes the partitions this node leads need,
// and the partitions they are for.
func (b *Broker) isrChanges(lagMaxMs int64) ([]controller.ISRChange, []*partition.Partition) {
	type led struct {
		t  *metadata.Topic
		i  int32
		mp metadata.Partition
	}
	var leds []led
	b.ctrl.View(func(im *metadata.Image) {
		for _, name := range im.TopicNames() {
			t := im.Topics[name]
			for i, mp := range t.Partitions {
				if mp.Leader == b.cfg.NodeID && len(mp.Replicas) > 1 {
					leds = append(leds, led{t, int32(i), mp})
				}
			}
		}
	})
	now := nowMs()
	var changes []controller.ISRChange
	var parts []*partition.Partition
	for _, l := range leds {
		part, kerrc := b.partition(l.t.Name, l.i)
		if kerrc != nil || part.LeaderEpoch() != l.mp.LeaderEpoch || !slices.Equal(part.ISR(), l.mp.ISR) {
			continue // not applied here yet
		}
		out := part.OutOfSyncReplicas(now, lagMaxMs)
		isr := slices.DeleteFunc(slices.Clone(l.mp.ISR), func(r int32) bool { return slices.Contains(out, r) })
		for _, r := range l.mp.Replicas {
			if !slices.Contains(l.mp.ISR, r) && part.CaughtUp(r, now, lagMaxMs) {
				isr = append(isr, r)
			}
		}
		if len(isr) == len(l.mp.ISR) && len(out) == 0 {
			continue
		}
		changes = append(changes, controller.ISRChange{
			TopicID: l.t.ID, Partition: l.i, LeaderEpoch: l.mp.LeaderEpoch,
			PartitionEpoch: l.mp.PartitionEpoch, NewISR: isr,
		})
		parts = append(parts, part)
	}
	return changes, parts
}

// proposeISR sends the changes to the active controller: a call when it
// is this node, AlterPartition otherwise. Each partition counts its
// proposed ISR from before the request is sent; one the controller
// refuses withdraws it, and is proposed again next time, against the
// image of then. When no answer comes the proposal stands: the controller
// may have committed it, and the image will say.
func (b *Broker) proposeISR(changes []controller.ISRChange, parts []*partition.Partition, lagMaxMs int64) {
	epoch := b.brokerEpoch()
	ctrlID := b.ctrl.ControllerID()
	if ctrlID < 0 {
		return
	}
	// Each new member is checked again as it starts to count: the high
	// watermark may have passed it since isrChanges looked.
	now := nowMs()
	n := 0
	for i, ch := range changes {
		if parts[i].ProposeISR(ch.NewISR, now, lagMaxMs) {
			changes[n], parts[n] = ch, parts[i]
			n++
		}
	}
	changes, parts = changes[:n], parts[:n]
	if n == 0 {
		return
	}
	if ctrlID == b.cfg.NodeID {
		results, err := b.ctrl.AlterPartition(b.cfg.NodeID, epoch, changes)
		if err != nil {
			b.logger.Debug("ISR change", "err", err)
			if errors.Is(err, kerr.NotController) {
				withdrawAll(parts)
			}
			return
		}
		for i, r := range results {
			if r.Err != nil {
				parts[i].WithdrawISRProposal()
			}
		}
		return
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.BrokerID, req.BrokerEpoch = b.cfg.NodeID, epoch
	for _, ch := range changes {
		rt := kmsg.NewAlterPartitionRequestTopic()
		rt.TopicID = ch.TopicID
		rp := kmsg.NewAlterPartitionRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch = ch.Partition, ch.LeaderEpoch, ch.PartitionEpoch
		rp.NewISR = ch.NewISR
		for _, r := range ch.NewISR {
			m := kmsg.NewAlterPartitionRequestTopicPartitionNewEpochISR()
			m.BrokerID, m.BrokerEpoch = r, -1
			rp.NewEpochISR = append(rp.NewEpochISR, m)
		}
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	kresp, err := b.peerRequest(b.quit, ctrlID, req)
	if err != nil {
		b.logger.Debug("ISR change", "controller", ctrlID, "err", err)
		return
	}
	resp := kresp.(*kmsg.AlterPartitionResponse)
	if code := resp.ErrorCode; code != 0 {
		// The whole request was refused (not the controller, a stale
		// broker epoch): nothing of it was committed.
		b.logger.Debug("ISR change refused", "controller", ctrlID, "err", kerr.ErrorForCode(code))
		withdrawAll(parts)
		return
	}
	refused := map[partitionRef]bool{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				refused[partitionRef{rt.TopidID, rt.Topic, rp.Partition}] = true
			}
		}
	}
	for i, ch := range changes {
		if refused[partitionRef{ch.TopicID, ch.Topic, ch.Partition}] {
			parts[i].WithdrawISRProposal()
		}
	}
}

// partitionRef names a partition in an AlterPartition response, by topic
// id (v2 and later) or name.
type partitionRef struct {
	id    metadata.TopicID
	name  string
	index int32
}

// withdrawAll withdraws the proposals of parts.
func withdrawAll(parts []*partition.Partition) {
	for _, p := range parts {
		p.WithdrawISRProposal()
	}
}
