package saga

import (
	"encoding/json"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"

	"github.com/weir-broker/weir/pkg/eos"
)

// The index of a partition's non-terminal orders by deadline, in the
// order service's store. It is split so that no store value (and no
// changelog record) grows with the number of outstanding orders: a
// bucket per second of deadlines, each in dueShards shards by order id,
// each shard a JSON map of order id to deadline of at most
// maxDueShardBytes. An order whose shard is full is refused at placement
// (Cancelled, Overloaded) rather than grow it: shedding load keeps the
// partition's transactions within the record size limit. Two more keys
// bound the walk over buckets: due-from, the first bucket that may hold
// an order not yet expired, and due-last, the last bucket written.
const (
	dueBucketMs      = 1000
	dueShards        = 8
	maxDueShardBytes = 256 << 10
)

var (
	dueFromKey = []byte("due-from")
	dueLastKey = []byte("due-last")
)

// dueBucket is the start of the bucket of deadline ms (ms >= 0).
func dueBucket(ms int64) int64 { return ms - ms%dueBucketMs }

func dueShardKey(bucket int64, shard uint32) []byte {
	return []byte("due/" + strconv.FormatInt(bucket, 10) + "/" + strconv.FormatUint(uint64(shard), 10))
}

func dueShardOf(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() % dueShards
}

func loadDueShard(store eos.Store, key []byte) (map[string]int64, error) {
	shard := map[string]int64{}
	b, err := store.Get(key)
	if err != nil || len(b) == 0 {
		return shard, err
	}
	return shard, json.Unmarshal(b, &shard)
}

func saveDueShard(store eos.Store, key []byte, shard map[string]int64) error {
	if len(shard) == 0 {
		return store.Delete(key)
	}
	b, err := marshal(shard)
	if err != nil {
		return err
	}
	return store.Put(key, b)
}

// indexOrder adds a non-terminal order to the index; false if its shard
// is full. The order's deadline must be after the event time it was
// placed at, so that its bucket is not one takeDue has left behind.
func indexOrder(store eos.Store, o *Order) (bool, error) {
	bucket := dueBucket(o.DeadlineMs)
	key := dueShardKey(bucket, dueShardOf(o.ID))
	shard, err := loadDueShard(store, key)
	if err != nil {
		return false, err
	}
	shard[o.ID] = o.DeadlineMs
	b, err := marshal(shard)
	if err != nil {
		return false, err
	}
	if len(b) > maxDueShardBytes {
		return false, nil
	}
	if err := store.Put(key, b); err != nil {
		return false, err
	}
	if _, ok, err := eos.GetInt64(store, dueFromKey); err != nil {
		return false, err
	} else if !ok {
		if err := eos.PutInt64(store, dueFromKey, bucket); err != nil {
			return false, err
		}
	}
	last, ok, err := eos.GetInt64(store, dueLastKey)
	if err != nil || (ok && last >= bucket) {
		return true, err
	}
	return true, eos.PutInt64(store, dueLastKey, bucket)
}

// unindexOrder removes an order that became terminal from the index.
func unindexOrder(store eos.Store, o *Order) error {
	key := dueShardKey(dueBucket(o.DeadlineMs), dueShardOf(o.ID))
	shard, err := loadDueShard(store, key)
	if err != nil {
		return err
	}
	if _, ok := shard[o.ID]; !ok {
		return nil
	}
	delete(shard, o.ID)
	return saveDueShard(store, key, shard)
}

// isIndexed reports whether the order is in the index.
func isIndexed(store eos.Store, o *Order) (bool, error) {
	shard, err := loadDueShard(store, dueShardKey(dueBucket(o.DeadlineMs), dueShardOf(o.ID)))
	_, ok := shard[o.ID]
	return ok, err
}

// takeDue removes from the index the orders whose deadline is at or
// before now, and returns their ids in bucket, then id, order. It walks
// the buckets from due-from to the one holding now, at most to due-last,
// and moves due-from past every bucket now has left behind.
func takeDue(store eos.Store, now int64) ([]string, error) {
	last, ok, err := eos.GetInt64(store, dueLastKey)
	if err != nil || !ok {
		return nil, err // nothing was ever indexed
	}
	from, ok, err := eos.GetInt64(store, dueFromKey)
	if err != nil {
		return nil, err
	}
	if !ok {
		from = last // cannot happen: indexOrder writes due-from first
	}
	var due []string
	b := from
	for ; b <= dueBucket(now) && b <= last; b += dueBucketMs {
		for s := range uint32(dueShards) {
			key := dueShardKey(b, s)
			shard, err := loadDueShard(store, key)
			if err != nil {
				return nil, err
			}
			n := len(shard)
			for _, id := range slices.Sorted(maps.Keys(shard)) {
				if shard[id] <= now {
					due = append(due, id)
					delete(shard, id)
				}
			}
			if len(shard) != n {
				if err := saveDueShard(store, key, shard); err != nil {
					return nil, err
				}
			}
		}
		if b+dueBucketMs-1 > now {
			break // the bucket holding now: later deadlines in it stay
		}
	}
	if b > last {
		b = max(b, dueBucket(now)) // no bucket between the last written and now
	}
	if b != from {
		return due, eos.PutInt64(store, dueFromKey, b)
	}
	return due, nil
}
