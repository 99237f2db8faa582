package broker

// What the group and transaction coordinators' drivers share for their
// internal topics (__consumer_offsets, __transaction_state): creating the
// topic on first use, listing the partitions this node leads, replaying a
// partition at load (coordinator_shards.go loads and unloads them as
// leadership comes and goes), and appending a batch of records whose durability is reported on
// a channel, so a driver never waits for an fsync under its lock.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/partition"
)

// internalTopic describes a coordinator's compacted internal topic.
type internalTopic struct {
	name       string
	partitions int32
	// replicationFactor is the setting's; the controller lowers it to the
	// brokers there are when the topic is created.
	replicationFactor int16
	configs           map[string]string
}

// ensure creates the topic if it does not exist and create is set. It
// reports whether the topic exists afterwards.
func (b *Broker) ensureInternalTopic(t internalTopic, create bool) (bool, error) {
	if b.topicExists(t.name) {
		return true, nil
	}
	if !create {
		return false, nil
	}
	_, _, err := b.ctrl.CreateTopic(controller.CreateTopic{
		Name:              t.name,
		Partitions:        t.partitions,
		ReplicationFactor: t.replicationFactor,
		Configs:           t.configs,
		Internal:          true,
	})
	if err != nil && !controller.IsCode(err, kerr.TopicAlreadyExists) {
		return false, fmt.Errorf("create %s: %w", t.name, err)
	}
	return true, nil
}

// internalPartitions lists the partitions of topic this node leads, in
// order.
func (b *Broker) internalPartitions(topic string) []*partition.Partition {
	b.pmu.RLock()
	defer b.pmu.RUnlock()
	var parts []*partition.Partition
	if ts := b.topics[topic]; ts != nil {
		for _, p := range ts.parts {
			if p != nil {
				parts = append(parts, p)
			}
		}
	}
	return parts
}

// replayPartition calls apply with every batch of part from its log start
// to its log end, in order. An error from apply stops the replay. A shard
// loads on its partition's leader, whose log is never cut while it
// leads: everything in it is state, also what a new leader's high
// watermark has not passed yet (it holds every write the previous leader
// acknowledged, and the rest become committed as the followers copy
// them).
func replayPartition(part *partition.Partition, apply func(b []byte, h batch.Header) error) error {
	hw := part.LogEndOffset()
	for off := part.LogStartOffset(); off < hw; {
		data, err := part.Read(off, hw, 1<<20)
		if err != nil {
			return fmt.Errorf("replay %s-%d at %d: %w", part.Topic, part.Index, off, err)
		}
		if len(data) == 0 {
			return fmt.Errorf("replay %s-%d: nothing to read at %d below %d", part.Topic, part.Index, off, hw)
		}
		for len(data) > 0 {
			h, err := batch.ParseHeader(data)
			if err != nil {
				return fmt.Errorf("replay %s-%d at %d: %w", part.Topic, part.Index, off, err)
			}
			if err := apply(data[:h.Size()], h); err != nil {
				return err
			}
			off = h.NextOffset()
			data = data[h.Size():]
		}
	}
	return nil
}

// appendInternal appends recs to part as one batch (transactional for
// spec's producer when spec says so, and then through guard) and returns
// a channel that reports once the batch is durable. It does not wait for
// the fsync.
func appendInternal(part *partition.Partition, spec batch.Spec, recs []batch.Record, guard *partition.TxnGuard) (<-chan error, error) {
	now := nowMs()
	spec.Timestamp = now
	b := batch.Build(spec, recs)
	h, err := batch.ParseHeader(b)
	if err != nil {
		return nil, err
	}
	var base int64
	if h.Transactional() {
		base, _, err = part.AppendVerified(b, h, now, guard)
	} else {
		base, _, err = part.Append(b, h, now)
	}
	if err != nil {
		return nil, err
	}
	return part.WaitDurable(base + int64(h.LastOffsetDelta) + 1), nil
}
