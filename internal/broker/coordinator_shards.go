package broker

// Coordinators follow partition leadership. The group coordinator and the
// transaction coordinator each keep one state machine per partition of
// their internal topic, and a node runs the state machines of exactly the
// partitions it leads: one is loaded (its partition replayed) when
// leadership arrives and unloaded when it leaves. shardSet is that
// mechanism, shared by both coordinators.
//
// A request for a key goes to the shard of the key's partition (computed
// from the topic's partition count in the image, as Kafka computes it):
// served when the shard is loaded, COORDINATOR_LOAD_IN_PROGRESS while it
// loads, NOT_COORDINATOR when this node does not lead the partition.
// Lock order: shardSet.mu, then nothing: loading and unloading run
// outside it.

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/partition"
)

// loadWait bounds how long a request waits for its shard to finish
// loading before it is answered COORDINATOR_LOAD_IN_PROGRESS. A new
// internal partition loads in far less; a long replay makes clients retry.
const loadWait = 2 * time.Second

// coordinatorShard is a loaded state machine.
type coordinatorShard interface {
	// unload stops the shard: waiting requests are answered
	// NOT_COORDINATOR and its I/O ends; it returns once nothing of the
	// shard touches the partition any more.
	unload()
}

// shardSet holds one coordinator's shards on this node. mu guards slots
// and closed.
type shardSet[S coordinatorShard] struct {
	b     *Broker
	topic internalTopic
	// open replays part into a new shard (and, for the transaction
	// coordinator, starts completing what was left prepared).
	open func(part *partition.Partition) (S, error)

	mu     sync.Mutex
	slots  map[int32]*shardSlot[S]
	closed bool
}

// shardSlot is one partition's shard: loading until ready is closed,
// then loaded (err nil) or failed.
type shardSlot[S coordinatorShard] struct {
	part  *partition.Partition
	ready chan struct{}
	s     S
	err   error
}

func newShardSet[S coordinatorShard](b *Broker, topic internalTopic, open func(*partition.Partition) (S, error)) *shardSet[S] {
	return &shardSet[S]{b: b, topic: topic, open: open, slots: map[int32]*shardSlot[S]{}}
}

// lead starts loading the shard of part, a partition this node now leads,
// and returns its slot; a shard already there for the same partition is
// kept.
func (ss *shardSet[S]) lead(part *partition.Partition) *shardSlot[S] {
	ss.mu.Lock()
	if sl := ss.slots[part.Index]; sl != nil && sl.part == part || ss.closed {
		ss.mu.Unlock()
		return sl
	}
	old := ss.slots[part.Index]
	sl := &shardSlot[S]{part: part, ready: make(chan struct{})}
	ss.slots[part.Index] = sl
	ss.mu.Unlock()
	if old != nil {
		old.unload()
	}
	// Not tracked by the broker's WaitGroup: close waits for every load
	// through its slot, and no load starts after close.
	go func() {
		sl.s, sl.err = ss.open(part)
		if sl.err != nil {
			ss.b.logger.Error("coordinator load failed", "topic", part.Topic, "partition", part.Index, "err", sl.err)
		}
		close(sl.ready)
		ss.mu.Lock()
		gone := ss.slots[part.Index] != sl || ss.closed
		ss.mu.Unlock()
		if gone && sl.err == nil {
			sl.s.unload() // unloaded while it loaded
		}
	}()
	return sl
}

// resign unloads the shard of partition index, which this node no longer
// leads. It returns once the shard no longer touches the partition.
func (ss *shardSet[S]) resign(index int32) {
	ss.mu.Lock()
	sl := ss.slots[index]
	delete(ss.slots, index)
	ss.mu.Unlock()
	if sl != nil {
		sl.unload()
	}
}

// unload waits for the slot's load to end and unloads what it loaded.
func (sl *shardSlot[S]) unload() {
	<-sl.ready
	if sl.err == nil {
		sl.s.unload()
	}
}

// close unloads every shard; the broker is stopping.
func (ss *shardSet[S]) close() {
	ss.mu.Lock()
	ss.closed = true
	slots := ss.slots
	ss.slots = map[int32]*shardSlot[S]{}
	ss.mu.Unlock()
	for _, sl := range slots {
		sl.unload()
	}
}

// errNoState is returned by get when the internal topic does not exist
// and was not to be created: nothing is stored yet.
var errNoState = fmt.Errorf("no coordinator state yet")

// get returns the shard coordinating key. With create, the internal topic
// is created first if it does not exist; without, a missing topic is
// errNoState. Errors carry NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS
// or COORDINATOR_NOT_AVAILABLE.
func (ss *shardSet[S]) get(key string, create bool) (S, error) {
	var zero S
	exists, err := ss.b.ensureInternalTopic(ss.topic, create)
	if err != nil {
		return zero, wrap(kerr.CoordinatorNotAvailable, err)
	}
	if !exists {
		return zero, errNoState
	}
	n := ss.b.partitionCount(ss.topic.name)
	if n == 0 {
		return zero, kerr.CoordinatorNotAvailable
	}
	return ss.shard(group.PartitionFor(key, n))
}

// shard returns the loaded shard of partition index, waiting up to
// loadWait for one that is loading.
func (ss *shardSet[S]) shard(index int32) (S, error) {
	var zero S
	ss.mu.Lock()
	sl := ss.slots[index]
	closed := ss.closed
	ss.mu.Unlock()
	switch {
	case closed:
		return zero, kerr.NotCoordinator
	case sl == nil:
		return zero, wrap(kerr.NotCoordinator, fmt.Errorf("this node does not lead %s-%d", ss.topic.name, index))
	}
	select {
	case <-sl.ready:
	case <-time.After(loadWait):
		return zero, kerr.CoordinatorLoadInProgress
	case <-ss.b.stop:
		return zero, kerr.NotCoordinator
	}
	if sl.err != nil {
		return zero, wrap(kerr.CoordinatorNotAvailable, sl.err)
	}
	return sl.s, nil
}

// loaded returns the loaded shards by partition, in partition order.
func (ss *shardSet[S]) loaded() []S {
	ss.mu.Lock()
	slots := make([]*shardSlot[S], 0, len(ss.slots))
	for _, sl := range ss.slots {
		slots = append(slots, sl)
	}
	ss.mu.Unlock()
	sort.Slice(slots, func(i, j int) bool { return slots[i].part.Index < slots[j].part.Index })
	var out []S
	for _, sl := range slots {
		select {
		case <-sl.ready:
			if sl.err == nil {
				out = append(out, sl.s)
			}
		default:
		}
	}
	return out
}

// waitLoaded waits for every shard loading now to finish loading.
func (ss *shardSet[S]) waitLoaded() error {
	ss.mu.Lock()
	var slots []*shardSlot[S]
	for _, sl := range ss.slots {
		slots = append(slots, sl)
	}
	ss.mu.Unlock()
	for _, sl := range slots {
		<-sl.ready
		if sl.err != nil {
			return sl.err
		}
	}
	return nil
}
