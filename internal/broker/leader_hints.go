package broker

// Leader hints (KIP-951): a Produce (v10+) or Fetch (v16+) sent to a node
// that does not lead the partition is answered NOT_LEADER_OR_FOLLOWER
// together with the leader and leader epoch this node's image names, and
// that leader's endpoint, so the client moves on without first asking
// for Metadata. Hints are only for the error case: the lean paths never
// read the image.

import (
	"slices"

	"github.com/weir-broker/weir/internal/metadata"
)

// leaderHint is the leader and leader epoch of a partition in the image,
// with the leader's registration; ok is false when the image names no
// registered leader.
func (b *Broker) leaderHint(topic string, index int32) (leader, epoch int32, br metadata.Broker, ok bool) {
	b.ctrl.View(func(im *metadata.Image) {
		t := im.Topics[topic]
		if t == nil || index < 0 || int(index) >= len(t.Partitions) {
			return
		}
		p := t.Partitions[index]
		br, ok = im.Brokers[p.Leader]
		ok = ok && !br.Fenced // clients are not told of fenced brokers
		leader, epoch = p.Leader, p.LeaderEpoch
	})
	return leader, epoch, br, ok
}

// hintedBrokers collects the endpoints a response names, once each.
type hintedBrokers []metadata.Broker

func (h *hintedBrokers) add(br metadata.Broker) {
	if !slices.ContainsFunc(*h, func(x metadata.Broker) bool { return x.NodeID == br.NodeID }) {
		*h = append(*h, br)
	}
}
