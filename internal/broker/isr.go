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
//
// A proposal stays in flight until its outcome is known, and no other
// change of the partition is proposed meanwhile (Kafka's pending ISR
// state): a proposal the controller may have committed — no answer came,
// or the controller moved, or the answer says this node's image is behind
// — is sent again as it was, or waited out until the image moves past
// the partition epoch it acted on; only a refusal of the change itself
// (a replica not eligible, a request not valid) or an image that moved on
// ends it early. A new change computed from a lagging image would
// otherwise drop from the count a follower the controller has already
// put in the ISR.

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
)

// isrProposal is one partition's ISR change and the partition it is for.
type isrProposal struct {
	change controller.ISRChange
	part   *partition.Partition
}

// isrLoop checks the ISR of the partitions this node leads, a few times
// per replica.lag.time.max.ms. It owns the proposals in flight.
func (b *Broker) isrLoop() {
	defer b.wg.Done()
	lagMax := b.settings.Int("replica.lag.time.max.ms")
	interval := max(time.Duration(lagMax)*time.Millisecond/4, 50*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	inFlight := map[partitionKey]isrProposal{}
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			if proposals := b.isrChanges(lagMax, inFlight); len(proposals) > 0 {
				b.proposeISR(proposals, inFlight, lagMax)
			}
		}
	}
}

// isrChanges lists the ISR proposals to send for the partitions this node
// leads: those in flight whose image has not moved, again as they were,
// and new changes for the others. A proposal whose partition's image
// moved on (a new partition or leader epoch, applied here) is done: the
// image says what the controller decided.
func (b *Broker) isrChanges(lagMaxMs int64, inFlight map[partitionKey]isrProposal) []isrProposal {
	type led struct {
		t  *metadata.Topic
		i  int32
		mp metadata.Partition
	}
	var leds []led
	brokers := map[int32]metadata.Broker{}
	b.ctrl.View(func(im *metadata.Image) {
		for id, br := range im.Brokers {
			brokers[id] = br
		}
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
	var out []isrProposal
	seen := map[partitionKey]bool{}
	for _, l := range leds {
		key := partitionKey{l.t.Name, l.i}
		seen[key] = true
		part, kerrc := b.partition(l.t.Name, l.i)
		if kerrc != nil || part.LeaderEpoch() != l.mp.LeaderEpoch || !slices.Equal(part.ISR(), l.mp.ISR) {
			continue // not applied here yet
		}
		if p, ok := inFlight[key]; ok {
			if p.part == part && p.change.PartitionEpoch == l.mp.PartitionEpoch && p.change.LeaderEpoch == l.mp.LeaderEpoch {
				out = append(out, p) // outcome unknown: ask again
				continue
			}
			delete(inFlight, key)
			p.part.WithdrawISRProposal()
		}
		gone := part.OutOfSyncReplicas(now, lagMaxMs)
		isr := slices.DeleteFunc(slices.Clone(l.mp.ISR), func(r int32) bool { return slices.Contains(gone, r) })
		var epochs []int64
		for _, r := range isr {
			epochs = append(epochs, part.FollowerBrokerEpoch(r))
		}
		for _, r := range l.mp.Replicas {
			if slices.Contains(l.mp.ISR, r) || !part.CaughtUp(r, now, lagMaxMs) {
				continue
			}
			// Only a live broker may join (KIP-903), and only on what its
			// current incarnation fetched: one that registered again may
			// have come back without its log. A fenced one the controller
			// would refuse, and with it the whole change.
			br, ok := brokers[r]
			fetchedAs := part.FollowerBrokerEpoch(r)
			if !ok || br.Fenced || br.ControlledShutdown || (fetchedAs >= 0 && fetchedAs != br.Epoch) {
				continue
			}
			isr, epochs = append(isr, r), append(epochs, fetchedAs)
		}
		if len(isr) == len(l.mp.ISR) && len(gone) == 0 {
			continue
		}
		// Each new member is checked again as it starts to count: the
		// high watermark may have passed it since CaughtUp looked.
		if !part.ProposeISR(isr, now, lagMaxMs) {
			continue
		}
		p := isrProposal{change: controller.ISRChange{
			TopicID: l.t.ID, Partition: l.i, LeaderEpoch: l.mp.LeaderEpoch,
			PartitionEpoch: l.mp.PartitionEpoch, NewISR: isr, NewISRBrokerEpochs: epochs,
		}, part: part}
		inFlight[key] = p
		out = append(out, p)
	}
	for key := range inFlight {
		if !seen[key] {
			delete(inFlight, key) // no longer led here
		}
	}
	return out
}

// proposeISR sends the proposals to the active controller: a call when it
// is this node, AlterPartition otherwise, and ends those whose outcome
// the answer settles (settleISR).
func (b *Broker) proposeISR(proposals []isrProposal, inFlight map[partitionKey]isrProposal, lagMaxMs int64) {
	epoch := b.brokerEpoch()
	ctrlID := b.ctrl.ControllerID()
	if ctrlID < 0 {
		return
	}
	changes := make([]controller.ISRChange, len(proposals))
	for i, p := range proposals {
		changes[i] = p.change
	}
	answers := make([]isrAnswer, len(proposals))
	if ctrlID == b.cfg.NodeID {
		results, err := b.ctrl.AlterPartition(b.cfg.NodeID, epoch, changes)
		if err != nil {
			b.logger.Debug("ISR change", "err", err)
			return
		}
		for i, r := range results {
			answers[i] = isrAnswer{err: r.Err, partitionEpoch: r.Partition.PartitionEpoch}
		}
	} else {
		var ok bool
		if answers, ok = b.alterPartitionRemote(ctrlID, epoch, changes); !ok {
			return
		}
	}
	for i, p := range proposals {
		if settleISR(p.change, answers[i]) {
			delete(inFlight, partitionKey{p.part.Topic, p.part.Index})
			p.part.WithdrawISRProposal()
		}
	}
}

// isrAnswer is the controller's answer for one ISR change.
type isrAnswer struct {
	err            *kerr.Error
	partitionEpoch int32 // the partition's epoch after the answer
}

// settleISR reports whether an answer ends a proposal before the image
// does: the controller refused the change itself, judged on the
// partition epoch it was made on, or found nothing to change. Any other
// refusal means this node's image (or the controller's) is behind, and
// the change may have been committed by an earlier copy of the request:
// it stays counted until the image moves. An accepted change also waits
// for the image.
func settleISR(ch controller.ISRChange, a isrAnswer) bool {
	switch a.err {
	case nil:
		return a.partitionEpoch == ch.PartitionEpoch // nothing committed
	case kerr.IneligibleReplica, kerr.InvalidRequest:
		return true
	}
	return false
}

// alterPartitionRemote sends changes to the active controller ctrlID and
// returns its answer for each, in order; ok is false when no usable
// answer came (the outcome is unknown).
func (b *Broker) alterPartitionRemote(ctrlID int32, brokerEpoch int64, changes []controller.ISRChange) ([]isrAnswer, bool) {
	req := kmsg.NewPtrAlterPartitionRequest()
	req.BrokerID, req.BrokerEpoch = b.cfg.NodeID, brokerEpoch
	for _, ch := range changes {
		rt := kmsg.NewAlterPartitionRequestTopic()
		rt.TopicID = ch.TopicID
		rp := kmsg.NewAlterPartitionRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch = ch.Partition, ch.LeaderEpoch, ch.PartitionEpoch
		rp.NewISR = ch.NewISR
		for i, r := range ch.NewISR {
			m := kmsg.NewAlterPartitionRequestTopicPartitionNewEpochISR()
			m.BrokerID, m.BrokerEpoch = r, ch.BrokerEpochOf(i)
			rp.NewEpochISR = append(rp.NewEpochISR, m)
		}
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	kresp, err := b.peerRequest(b.quit, ctrlID, req)
	if err != nil {
		b.logger.Debug("ISR change", "controller", ctrlID, "err", err)
		return nil, false
	}
	resp := kresp.(*kmsg.AlterPartitionResponse)
	if code := resp.ErrorCode; code != 0 {
		// The whole request was refused (not the controller, a stale
		// broker epoch); an earlier copy may still have been committed.
		b.logger.Debug("ISR change refused", "controller", ctrlID, "err", kerr.ErrorForCode(code))
		return nil, false
	}
	type ref struct {
		id    metadata.TopicID
		name  string
		index int32
	}
	got := map[ref]isrAnswer{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			got[ref{rt.TopidID, rt.Topic, rp.Partition}] = isrAnswer{err: kerr.TypedErrorForCode(rp.ErrorCode), partitionEpoch: rp.PartitionEpoch}
		}
	}
	answers := make([]isrAnswer, len(changes))
	for i, ch := range changes {
		a, ok := got[ref{ch.TopicID, ch.Topic, ch.Partition}]
		if !ok {
			a = isrAnswer{err: kerr.UnknownServerError, partitionEpoch: ch.PartitionEpoch}
		}
		answers[i] = a
	}
	return answers, true
}
