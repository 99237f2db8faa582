package broker

// The replicas this node holds and the role of each (KIP-101 and the
// Kafka replication design): for every partition whose replicas the
// image names this node among, it is the leader, which serves clients and
// follower fetches, or a follower, which copies the leader's log
// (replica_fetcher.go). reconcile is the one place where a partition's
// role changes on a broker; the image says what it should be.
//
// A leader's partition is published in topicState.parts, which is all
// the client paths look at: a follower answers clients
// NOT_LEADER_OR_FOLLOWER as a node without the partition does. Followers
// are kept in b.followers, guarded by rmu, and handed to the fetchers.

import (
	"os"
	"slices"
	"strconv"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
)

// follower is a partition this node follows, and whom it follows.
type follower struct {
	p       *partition.Partition
	topicID metadata.TopicID
	leader  int32 // -1: none now
	epoch   int32
}

// hosts reports whether this node holds a replica of partition i of t.
func (b *Broker) hosts(t *metadata.Topic, i int32) bool {
	return !b.ctrl.Clustered() || slices.Contains(t.Partitions[i].Replicas, b.cfg.NodeID)
}

// minISR is a topic's min.insync.replicas.
func (b *Broker) minISR(overrides map[string]string) int {
	n, _ := strconv.Atoi(b.settings.Topic(overrides)["min.insync.replicas"])
	return max(n, 1)
}

// addFollower records p, opened, as this node's follower replica of
// partition i of t; its leader is not known yet.
func (b *Broker) addFollower(t *metadata.Topic, i int32, p *partition.Partition) {
	b.followers[partitionKey{t.Name, i}] = &follower{p: p, topicID: t.ID, leader: -2, epoch: -1}
}

// reconcile makes the replicas this node holds, and their roles, those
// the image gives. A partition it now leads is opened (or promoted from
// follower, keeping its log) and published, and for an internal topic its
// coordinator shard starts loading; a leader whose epoch or ISR changed
// takes them. A partition it follows is opened (or demoted from leader:
// withdrawn from clients at once, its acks=all waits failed, its shard
// unloaded) and handed to the fetcher of its leader. One it no longer
// holds (a reassignment moved it away, KIP-455) is withdrawn at once,
// its acks=all waits failed as a deposed leader's are, and it is closed
// and its directory deleted on a goroutine: unloading a shard waits for
// the shard's I/O, which may need the metadata image this call holds
// locked. Deleting loses nothing: a replica leaves the assignment only
// once the ISR of the new one holds what was acknowledged, and one held
// again later starts empty and copies the leader's log from its start.
// A partition held again before its close is done is opened once the
// close is done (by a later reconcile), never twice at once. The caller
// holds the image (apply, or View); rmu serialises reconciles.
func (b *Broker) reconcile(im *metadata.Image) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	type step struct {
		t   *metadata.Topic
		i   int32
		cur *partition.Partition // the published leader, if any
		fol *follower            // the follower, if any
	}
	var opens, setLeaders, promotes, demotes, refollows, closes, placeholders []step
	b.pmu.RLock()
	for _, name := range im.TopicNames() {
		t := im.Topics[name]
		ts := b.topics[name]
		for i := range t.Partitions {
			mp := t.Partitions[i]
			s := step{t: t, i: int32(i), fol: b.followers[partitionKey{name, int32(i)}]}
			known := ts != nil && i < len(ts.parts)
			if known {
				s.cur = ts.parts[i]
			}
			lead, host := b.leads(im, t, int32(i)), b.hosts(t, int32(i))
			switch {
			case lead && s.cur != nil:
				if s.cur.LeaderEpoch() != mp.LeaderEpoch || !slices.Equal(s.cur.ISR(), mp.ISR) {
					setLeaders = append(setLeaders, s)
				}
			case lead && s.fol != nil:
				promotes = append(promotes, s)
			case lead:
				opens = append(opens, s)
			case host && s.cur != nil:
				demotes = append(demotes, s)
			case host && s.fol != nil:
				if s.fol.leader != mp.Leader || s.fol.epoch != mp.LeaderEpoch {
					refollows = append(refollows, s)
				}
			case host:
				opens = append(opens, s)
			case s.cur != nil || s.fol != nil:
				closes = append(closes, s)
			}
			if !known && !lead {
				placeholders = append(placeholders, s)
			}
		}
	}
	b.pmu.RUnlock()

	for _, s := range setLeaders {
		mp := s.t.Partitions[s.i]
		if err := s.cur.SetLeader(mp.LeaderEpoch, mp.ISR); err != nil {
			b.logger.Error("leader epoch", "topic", s.t.Name, "partition", s.i, "err", err)
		}
	}
	// Withdraw from clients first: demoted and closed leaders, and the
	// placeholders of partitions led elsewhere.
	withdraw := slices.Concat(demotes, placeholders)
	for _, s := range closes {
		if s.cur != nil {
			withdraw = append(withdraw, s)
		}
	}
	if len(withdraw) > 0 {
		b.pmu.Lock()
		for _, s := range withdraw {
			b.setPartitionLocked(s.t, s.i, nil)
		}
		b.pmu.Unlock()
	}
	for _, s := range demotes {
		mp := s.t.Partitions[s.i]
		s.cur.BecomeFollower(mp.LeaderEpoch)
		b.unloadCoordinatorAsync(s.t.Name, s.i)
		b.follow(s.t, s.i, s.cur)
	}
	for _, s := range refollows {
		mp := s.t.Partitions[s.i]
		if mp.LeaderEpoch != s.fol.epoch {
			s.fol.p.BecomeFollower(mp.LeaderEpoch)
		}
		b.follow(s.t, s.i, s.fol.p)
	}
	for _, s := range promotes {
		key := partitionKey{s.t.Name, s.i}
		b.fetchers.remove(key)
		delete(b.followers, key)
		mp := s.t.Partitions[s.i]
		if err := s.fol.p.SetLeader(mp.LeaderEpoch, mp.ISR); err != nil {
			// It cannot lead: it stays out of the clients' reach, and the
			// controller fences the node if it keeps failing.
			b.logger.Error("become leader", "topic", s.t.Name, "partition", s.i, "err", err)
			b.followers[key] = s.fol
			continue
		}
		b.pmu.Lock()
		b.setPartitionLocked(s.t, s.i, s.fol.p)
		b.pmu.Unlock()
		b.loadCoordinator(s.fol.p)
	}
	for _, s := range closes {
		key := partitionKey{s.t.Name, s.i}
		p := s.cur
		if p != nil {
			// A leader moved away: its waiting acks=all writes are
			// answered NOT_LEADER_OR_FOLLOWER, and retried on the new
			// leader, which the completion of the move elected.
			p.BecomeFollower(s.t.Partitions[s.i].LeaderEpoch)
		}
		if s.fol != nil {
			b.fetchers.remove(key)
			delete(b.followers, key)
			p = s.fol.p
		}
		b.closeAsync(key, p)
	}
	for _, s := range opens {
		key := partitionKey{s.t.Name, s.i}
		if _, ok := b.closing[key]; ok {
			continue // still closing: the close's own reconcile opens it
		}
		lead := b.leads(im, s.t, s.i)
		p, err := b.openPartitionFiles(s.t, s.i, lead)
		if err != nil {
			b.logger.Error("open partition", "topic", s.t.Name, "partition", s.i, "err", err)
			continue
		}
		if !lead {
			b.follow(s.t, s.i, p)
			continue
		}
		b.pmu.Lock()
		b.setPartitionLocked(s.t, s.i, p)
		b.pmu.Unlock()
		b.loadCoordinator(p)
	}
	// Followers opened at start are handed to their fetchers here.
	for key, f := range b.followers {
		if f.leader == -2 {
			t := im.Topics[key.topic]
			if t != nil && int(key.index) < len(t.Partitions) {
				b.follow(t, key.index, f.p)
			}
		}
	}
}

// follow registers p as the follower of partition i of t and hands it to
// the fetcher of the leader the image names (none while it has none).
// rmu is held.
func (b *Broker) follow(t *metadata.Topic, i int32, p *partition.Partition) {
	mp := t.Partitions[i]
	key := partitionKey{t.Name, i}
	b.followers[key] = &follower{p: p, topicID: t.ID, leader: mp.Leader, epoch: mp.LeaderEpoch}
	b.fetchers.remove(key)
	if mp.Leader >= 0 && mp.Leader != b.cfg.NodeID {
		b.fetchers.add(mp.Leader, key, fetchedPartition{p: p, topicID: t.ID, epoch: mp.LeaderEpoch})
	}
}

// unloadCoordinatorAsync unloads, on a goroutine Close waits for, the
// coordinator shard of partition index of topic (an internal topic).
func (b *Broker) unloadCoordinatorAsync(topic string, index int32) {
	if topic != TxnStateTopic && topic != "__consumer_offsets" {
		return
	}
	b.resigned.Add(1)
	go func() {
		defer b.resigned.Done()
		b.unloadCoordinator(topic, index)
	}()
}

// closeAsync unloads p's coordinator shard, if any, closes p and deletes
// its directory on a goroutine Close waits for, then reconciles again:
// the partition may be held again meanwhile. It is not opened again
// before its directory is gone (opens skip what is closing), and a
// directory left by a crash before the deletion is removed at the next
// start (removeStrayDirs). rmu is held.
func (b *Broker) closeAsync(key partitionKey, p *partition.Partition) {
	b.closing[key] = struct{}{}
	b.resigned.Add(1)
	go func() {
		defer b.resigned.Done()
		b.unloadCoordinator(key.topic, key.index)
		if err := p.Close(); err != nil {
			b.logger.Error("close partition", "topic", key.topic, "partition", key.index, "err", err)
		}
		if err := os.RemoveAll(b.partitionDir(key.topic, key.index)); err != nil {
			b.logger.Error("delete partition moved away", "topic", key.topic, "partition", key.index, "err", err)
		} else {
			b.logger.Info("deleted partition moved away", "topic", key.topic, "partition", key.index)
		}
		b.rmu.Lock()
		delete(b.closing, key)
		b.rmu.Unlock()
		select {
		case <-b.stop:
		default:
			b.ctrl.View(b.reconcile)
		}
	}()
}

// closeFollowers stops the fetchers and closes every follower; the broker
// is stopping.
func (b *Broker) closeFollowers() {
	b.fetchers.close()
	b.rmu.Lock()
	defer b.rmu.Unlock()
	for key, f := range b.followers {
		if err := f.p.Close(); err != nil {
			b.logger.Error("close partition", "topic", key.topic, "partition", key.index, "err", err)
		}
		delete(b.followers, key)
	}
}

// dropFollowers stops following the partitions of a deleted topic and
// returns them, for the caller to close.
func (b *Broker) dropFollowers(topic string) []*partition.Partition {
	if topic == "" {
		return nil
	}
	b.rmu.Lock()
	defer b.rmu.Unlock()
	var out []*partition.Partition
	for key, f := range b.followers {
		if key.topic == topic {
			b.fetchers.remove(key)
			delete(b.followers, key)
			out = append(out, f.p)
		}
	}
	return out
}

// configureFollowers applies a topic's changed configs to its followers.
func (b *Broker) configureFollowers(t *metadata.Topic) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	cfg, minISR := b.logConfig(t.Configs), b.minISR(t.Configs)
	for key, f := range b.followers {
		if key.topic == t.Name {
			f.p.SetConfig(cfg)
			f.p.SetMinISR(minISR)
		}
	}
}
