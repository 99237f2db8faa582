package group

// The records of __consumer_offsets, in Apache Kafka's own format so that
// tools that read the topic understand it: the key starts with a version
// that says what it is.
//
//	key v0/v1 (offset commit):  group, topic, partition
//	value: OffsetCommitValue v3 (offset, leader epoch, metadata, commit time)
//	key v2 (group metadata):    group
//	value: GroupMetadataValue v3 (protocol type, generation, protocol,
//	       leader, state time, members with subscription and assignment)
//
// A nil value is a tombstone: the offset was deleted or expired, or the
// group was deleted. The encodings are kmsg's; nothing here is hand-coded.

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	offsetKeyVersion   = 1
	groupKeyVersion    = 2
	offsetValueVersion = 3
	groupValueVersion  = 3
)

func offsetKey(group string, tp topicPartition) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: tp.topic, Partition: tp.partition}
	return k.AppendTo(nil)
}

func offsetValue(o offset) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = o.offset, o.leaderEpoch, o.metadata, o.commitMs
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return k.AppendTo(nil)
}

// groupValue encodes g's membership; assign, when not nil, replaces the
// members' assignments (the leader's, about to be handed out).
func groupValue(g *group, assign map[string][]byte) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	v.CurrentStateTimestamp = g.stateSinceMs
	if g.protocol != "" {
		p := g.protocol
		v.Protocol = &p
	}
	if g.leader != "" {
		l := g.leader
		v.Leader = &l
	}
	g.each(func(m *member) {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID, vm.ClientID, vm.ClientHost = m.id, m.clientID, m.clientHost
		if m.instanceID != "" {
			inst := m.instanceID
			vm.InstanceID = &inst
		}
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeoutMs)
		vm.SessionTimeoutMillis = int32(m.sessionTimeoutMs)
		vm.Subscription = m.metadataFor(g.protocol)
		vm.Assignment = m.assignment
		if assign != nil {
			vm.Assignment = assign[m.id]
		}
		v.Members = append(v.Members, vm)
	})
	return v.AppendTo(nil)
}

// storeGroup appends g's membership and calls onDone (if not nil) once it
// is durable or failed.
func (s *Shard) storeGroup(g *group, assign map[string][]byte, onDone func(nowMs int64, err error)) {
	if onDone == nil {
		onDone = func(int64, error) {}
	}
	s.append([]Record{{Key: groupKey(g.id), Value: groupValue(g, assign)}}, onDone)
}

// Replay applies one record read back from the partition, in log order,
// before Loaded.
func (s *Shard) Replay(key, value []byte) error {
	if len(key) < 2 {
		return fmt.Errorf("group: record key of %d bytes", len(key))
	}
	switch version := int16(binary.BigEndian.Uint16(key)); version {
	case 0, 1:
		return s.replayOffset(key, value)
	case 2:
		return s.replayGroup(key, value)
	case consumerGroupKeyVersion:
		return s.replayConsumerGroup(key, value)
	default:
		return fmt.Errorf("group: unknown record key version %d", version)
	}
}

func (s *Shard) replayOffset(key, value []byte) error {
	var k kmsg.OffsetCommitKey
	if err := k.ReadFrom(key); err != nil {
		return fmt.Errorf("group: offset commit key: %w", err)
	}
	tp := topicPartition{k.Topic, k.Partition}
	g := s.groups[k.Group]
	if value == nil {
		if g != nil {
			g.dropOffset(tp, s.nextSeq())
			s.dropIfUnused(g)
		}
		return nil
	}
	var v kmsg.OffsetCommitValue
	if err := v.ReadFrom(value); err != nil {
		return fmt.Errorf("group %q: offset commit value: %w", k.Group, err)
	}
	if g == nil {
		g = newGroup(k.Group, 0)
		s.groups[k.Group] = g
	}
	epoch := int32(-1)
	if v.Version >= 3 {
		epoch = v.LeaderEpoch
	}
	g.setOffset(tp, offset{offset: v.Offset, leaderEpoch: epoch, metadata: v.Metadata, commitMs: v.CommitTimestamp, seq: s.nextSeq()})
	return nil
}

func (s *Shard) replayGroup(key, value []byte) error {
	var k kmsg.GroupMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return fmt.Errorf("group: group metadata key: %w", err)
	}
	old := s.groups[k.Group]
	g := newGroup(k.Group, 0)
	if old != nil {
		g.offsets, g.txnOffsets = old.offsets, old.txnOffsets
		if value == nil {
			// The classic record's tombstone, as a group converts to the
			// consumer protocol: a consumer group stored before it stays.
			g.cg, g.cgStored = old.cg, old.cgStored
		}
	}
	s.groups[k.Group] = g
	if value == nil {
		s.dropIfUnused(g)
		return nil
	}
	var v kmsg.GroupMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return fmt.Errorf("group %q: group metadata value: %w", k.Group, err)
	}
	g.protocolType, g.generation = v.ProtocolType, v.Generation
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.Version >= 2 && v.CurrentStateTimestamp > 0 {
		g.stateSinceMs = v.CurrentStateTimestamp
	}
	for _, vm := range v.Members {
		m := &member{
			id: vm.MemberID, clientID: vm.ClientID, clientHost: vm.ClientHost,
			sessionTimeoutMs: int64(vm.SessionTimeoutMillis), rebalanceTimeoutMs: int64(vm.RebalanceTimeoutMillis),
			protocolType: v.ProtocolType,
			protocols:    []protocol{{name: g.protocol, metadata: vm.Subscription}},
			assignment:   vm.Assignment,
		}
		if m.rebalanceTimeoutMs <= 0 {
			m.rebalanceTimeoutMs = m.sessionTimeoutMs
		}
		if vm.InstanceID != nil {
			m.instanceID = *vm.InstanceID
		}
		g.addMember(m)
	}
	if v.Leader != nil && g.members[*v.Leader] != nil {
		g.leader = *v.Leader
	}
	return nil
}

// dropIfUnused forgets a replayed group that holds nothing any more.
func (s *Shard) dropIfUnused(g *group) {
	if g.cg == nil && len(g.members) == 0 && len(g.offsets) == 0 && len(g.txnOffsets) == 0 && g.generation == 0 && g.protocolType == "" {
		delete(s.groups, g.id)
	}
}
