package txn

import (
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// View is an immutable snapshot of every transactional id's producer and
// open transaction, published by the coordinator after each change. The
// produce path's KIP-890 check and TxnOffsetCommit's read it without any
// lock.
//
// A transaction whose PrepareCommit or PrepareAbort is being made
// durable is published as prepared already: from the moment EndTxn is
// accepted no write is verified into it.
type View struct {
	shards [viewShards]map[int64]ProducerView // by producer id modulo viewShards
}

// viewShards splits the view so a change copies one shard's map, not
// every producer's.
const viewShards = 64

func shardOf(pid int64) int { return int(uint64(pid) % viewShards) }

// ProducerView is one producer's entry in a View.
type ProducerView struct {
	TransactionalID string
	ProducerEpoch   int16
	Status          Status
	Partitions      []TopicPartition // shared with the Meta: read only
	Groups          []string
}

var emptyView = func() *View {
	v := &View{}
	for i := range v.shards {
		v.shards[i] = map[int64]ProducerView{}
	}
	return v
}()

// View returns the latest published snapshot. Safe for concurrent use.
func (c *Coordinator) View() *View { return c.view.Load() }

// publish replaces the view with one that reflects the dirty ids,
// copying only the shards they touch.
func (c *Coordinator) publish() {
	v := *c.view.Load()
	var copied [viewShards]bool
	shard := func(pid int64) map[int64]ProducerView {
		i := shardOf(pid)
		if !copied[i] {
			v.shards[i] = maps.Clone(v.shards[i])
			copied[i] = true
		}
		return v.shards[i]
	}
	for id := range c.dirty {
		if pid, ok := c.published[id]; ok {
			delete(shard(pid), pid)
			delete(c.published, id)
		}
		m := c.txns[id]
		if st := c.ids[id]; st != nil && st.pending != nil && preparing(st.pending.Status) {
			m = st.pending
		}
		if st := c.ids[id]; m == nil || st != nil && st.unknown {
			continue // nothing of it is verified
		}
		shard(m.ProducerID)[m.ProducerID] = ProducerView{TransactionalID: id, ProducerEpoch: m.ProducerEpoch, Status: m.Status, Partitions: m.Partitions, Groups: m.Groups}
		c.published[id] = m.ProducerID
	}
	clear(c.dirty)
	c.view.Store(&v)
}

// InTransaction reports whether tp is part of producer pid's open
// transaction at epoch: the KIP-890 check made before a transactional
// batch is appended, so a late retry cannot land in a later transaction.
func (v *View) InTransaction(pid int64, epoch int16, tp TopicPartition) error {
	p, ok := v.shards[shardOf(pid)][pid]
	switch {
	case !ok:
		return kerr.InvalidProducerIDMapping
	case epoch != p.ProducerEpoch:
		return kerr.InvalidProducerEpoch
	case p.Status != Ongoing || !containsTP(p.Partitions, tp):
		return kerr.InvalidTxnState
	}
	return nil
}

// GroupInTransaction reports whether group was added (AddOffsetsToTxn) to
// producer pid's open transaction at epoch under transactional id id:
// checked before a TxnOffsetCommit is written, as KIP-890 checks data
// writes.
func (v *View) GroupInTransaction(id string, pid int64, epoch int16, group string) error {
	return v.GroupsInTransaction(id, pid, epoch, func(g string) bool { return g == group })
}

// GroupsInTransaction is GroupInTransaction for any group match accepts:
// a broker that hosts the groups of one __consumer_offsets partition asks
// whether one of them is in the transaction.
func (v *View) GroupsInTransaction(id string, pid int64, epoch int16, match func(group string) bool) error {
	p, ok := v.shards[shardOf(pid)][pid]
	switch {
	case !ok || p.TransactionalID != id:
		return kerr.InvalidProducerIDMapping
	case epoch < p.ProducerEpoch:
		return kerr.ProducerFenced
	case epoch > p.ProducerEpoch:
		return kerr.InvalidProducerEpoch
	case p.Status != Ongoing || !slices.ContainsFunc(p.Groups, match):
		return kerr.InvalidTxnState
	}
	return nil
}
