package broker

// Followers copy their leaders' logs with the Fetch API, as Kafka's do
// (KIP-320 for divergence, KIP-392's ReplicaState from v15). One fetcher
// goroutine per leader node carries every partition this node follows
// from it. Each round it asks for every partition from the offset below
// which its own log is fsynced — the leader counts that offset as what
// the follower holds durably, so an acks=all write is acknowledged only
// once it is fsynced on every ISR member — with the epoch of its last
// batch, so the leader can say where the two logs diverge. It appends
// what comes back byte for byte (partition.AppendReplica), fsyncs it
// before the next round, and takes the leader's high watermark.

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
)

// fetchRetryBackoff is the pause after a failed fetch round.
const fetchRetryBackoff = 100 * time.Millisecond

// fetchedPartition is one partition a fetcher copies.
type fetchedPartition struct {
	p       *partition.Partition
	topicID metadata.TopicID
	epoch   int32 // the leader epoch the image names
}

// replicaFetchers owns one fetcher per leader node. mu guards byLeader
// and closed.
type replicaFetchers struct {
	b        *Broker
	mu       sync.Mutex
	byLeader map[int32]*fetcher
	closed   bool
	wg       sync.WaitGroup
}

// fetcher copies the partitions this node follows from one leader. mu
// guards parts.
type fetcher struct {
	leader int32
	mu     sync.Mutex
	parts  map[partitionKey]fetchedPartition
	kick   chan struct{}
	stop   chan struct{}
}

func newReplicaFetchers(b *Broker) *replicaFetchers {
	return &replicaFetchers{b: b, byLeader: map[int32]*fetcher{}}
}

// add makes the fetcher of leader copy partition key.
func (rf *replicaFetchers) add(leader int32, key partitionKey, fp fetchedPartition) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.closed {
		return
	}
	f := rf.byLeader[leader]
	if f == nil {
		f = &fetcher{leader: leader, parts: map[partitionKey]fetchedPartition{}, kick: make(chan struct{}, 1), stop: make(chan struct{})}
		rf.byLeader[leader] = f
		rf.wg.Add(1)
		go func() {
			defer rf.wg.Done()
			rf.b.runFetcher(f)
		}()
	}
	f.mu.Lock()
	f.parts[key] = fp
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// remove stops copying partition key, from whichever leader. A round in
// flight may still append what it fetched; the partition's role decides
// whether that is accepted (a promoted leader refuses it).
func (rf *replicaFetchers) remove(key partitionKey) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	for _, f := range rf.byLeader {
		f.mu.Lock()
		delete(f.parts, key)
		f.mu.Unlock()
	}
}

// close stops every fetcher and waits for them.
func (rf *replicaFetchers) close() {
	rf.mu.Lock()
	rf.closed = true
	for _, f := range rf.byLeader {
		close(f.stop)
	}
	rf.mu.Unlock()
	rf.wg.Wait()
}

// snapshot lists the fetcher's partitions.
func (f *fetcher) snapshot() map[partitionKey]fetchedPartition {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[partitionKey]fetchedPartition, len(f.parts))
	for k, v := range f.parts {
		out[k] = v
	}
	return out
}

// still reports whether the fetcher still copies key as fp.
func (f *fetcher) still(key partitionKey, fp fetchedPartition) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.parts[key]
	return ok && cur.p == fp.p && cur.epoch == fp.epoch
}

// runFetcher is one leader's fetch loop.
func (b *Broker) runFetcher(f *fetcher) {
	maxWait := int32(b.settings.Int("replica.fetch.wait.max.ms"))
	maxBytes := int32(b.settings.Int("replica.fetch.max.bytes"))
	for {
		parts := f.snapshot()
		if len(parts) == 0 {
			select {
			case <-f.kick:
				continue
			case <-f.stop:
				return
			}
		}
		ok := b.fetchRound(f, parts, maxWait, maxBytes)
		select {
		case <-f.stop:
			return
		default:
		}
		if !ok {
			select {
			case <-time.After(fetchRetryBackoff):
			case <-f.stop:
				return
			}
		}
	}
}

// fetchRound sends one Fetch for parts to the leader and applies the
// answer; it reports whether the round went through.
func (b *Broker) fetchRound(f *fetcher, parts map[partitionKey]fetchedPartition, maxWait, maxBytes int32) bool {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = b.cfg.NodeID
	req.ReplicaState.ID = b.cfg.NodeID
	req.ReplicaState.Epoch = b.brokerEpoch()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWait, 1, maxBytes*int32(max(len(parts), 1))
	req.SessionEpoch = -1
	type slot struct {
		key partitionKey
		fp  fetchedPartition
	}
	var order []slot
	byTopic := map[string]int{}
	for key, fp := range parts {
		i, ok := byTopic[key.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[key.topic] = i
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = key.topic, fp.topicID
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = key.index
		rp.CurrentLeaderEpoch = fp.epoch
		rp.FetchOffset = fp.p.FlushedOffset()
		rp.LastFetchedEpoch = fp.p.LatestEpoch()
		rp.LogStartOffset = fp.p.LogStartOffset()
		rp.PartitionMaxBytes = maxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		order = append(order, slot{key, fp})
	}
	kresp, err := b.peerRequest(f.stop, f.leader, req)
	if err != nil {
		b.logger.Debug("replica fetch failed", "leader", f.leader, "err", err)
		return false
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		b.logger.Debug("replica fetch refused", "leader", f.leader, "err", kerr.ErrorForCode(resp.ErrorCode))
		return false
	}
	find := func(key partitionKey) *kmsg.FetchResponseTopicPartition {
		for ti := range resp.Topics {
			rt := &resp.Topics[ti]
			if rt.Topic != key.topic && !(rt.Topic == "" && rt.TopicID == parts[key].topicID) {
				continue
			}
			for pi := range rt.Partitions {
				if rt.Partitions[pi].Partition == key.index {
					return &rt.Partitions[pi]
				}
			}
		}
		return nil
	}
	// Append what came for each partition, fsync the partitions that took
	// records together (one fsync's wait for the round, not one per
	// partition), then take the leader's high watermark and log start.
	progressed := true
	type appended struct {
		key partitionKey
		p   *partition.Partition
		rp  *kmsg.FetchResponseTopicPartition
	}
	var took, synced []appended
	for _, s := range order {
		rp := find(s.key)
		if rp == nil || !f.still(s.key, s.fp) {
			continue
		}
		switch b.appendFetched(s.key, s.fp.p, rp) {
		case fetchFailed:
			progressed = false
		case fetchAppended:
			took = append(took, appended{s.key, s.fp.p, rp})
		case fetchNothing:
			synced = append(synced, appended{s.key, s.fp.p, rp})
		}
	}
	errs := make([]error, len(took))
	var wg sync.WaitGroup
	for i, a := range took {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Durable before the next fetch, whose offset tells the
			// leader what this replica holds.
			errs[i] = a.p.Sync()
		}()
	}
	wg.Wait()
	for i, a := range took {
		if errs[i] != nil {
			b.logger.Error("replica sync", "topic", a.key.topic, "partition", a.key.index, "err", errs[i])
			progressed = false
			continue
		}
		synced = append(synced, a)
	}
	for _, a := range synced {
		if !b.followLeaderMarks(a.key, a.p, a.rp) {
			progressed = false
		}
	}
	return progressed
}

// fetchOutcome is what appendFetched did with one partition's answer.
type fetchOutcome int

const (
	fetchFailed    fetchOutcome = iota // nothing applied; the round did not go through
	fetchTruncated                     // the log was cut where the leader said; fetch again
	fetchNothing                       // no records came
	fetchAppended                      // records appended, not yet fsynced
)

// appendFetched applies one partition's part of a fetch response to the
// follower p, up to appending its records: a truncation the leader asks
// for, or the records, which the caller fsyncs.
func (b *Broker) appendFetched(key partitionKey, p *partition.Partition, rp *kmsg.FetchResponseTopicPartition) fetchOutcome {
	switch err := kerr.ErrorForCode(rp.ErrorCode); err {
	case nil:
	case kerr.FencedLeaderEpoch, kerr.UnknownLeaderEpoch, kerr.NotLeaderForPartition:
		// The leader moved on, or this node's image is ahead of the
		// leader's: the next image sorts it out.
		return fetchFailed
	case kerr.OffsetOutOfRange:
		if b.resetOutOfRange(key, p, rp) {
			return fetchTruncated
		}
		return fetchFailed
	default:
		b.logger.Info("replica fetch", "topic", key.topic, "partition", key.index, "err", err)
		return fetchFailed
	}
	if rp.DivergingEpoch.EndOffset >= 0 {
		// KIP-320: this log diverged from the leader's. Cut it at the
		// smaller of where the leader's diverging epoch ends and where
		// this log's largest epoch at or below it ends (KIP-279: this log
		// may never have had the leader's epoch), then fetch again; the
		// next answer says whether the logs now agree.
		to := rp.DivergingEpoch.EndOffset
		if _, end := p.EndOffsetForEpoch(rp.DivergingEpoch.Epoch); end >= 0 {
			to = min(to, end)
		}
		if _, err := p.TruncateTo(to); err != nil {
			b.logger.Error("truncate diverged replica", "topic", key.topic, "partition", key.index, "offset", to, "err", err)
			return fetchFailed
		}
		b.logger.Info("truncated diverged replica", "topic", key.topic, "partition", key.index, "offset", to)
		return fetchTruncated
	}
	if len(rp.RecordBatches) > 0 {
		if h, err := batch.ParseHeader(rp.RecordBatches); err == nil && h.BaseOffset < p.LogEndOffset() && h.NextOffset() > p.LogEndOffset() {
			// The batch holding this log's end starts below it: the
			// leader's cleaner folded the batches around it into one (the
			// same offsets, fewer records), or this log started again at
			// the leader's log start, inside a batch. Take the batch
			// whole: cut back to where it starts, or, where that is below
			// this log's start, start the log again there (the leader's
			// log start, which the answer carries, is taken after).
			cut := func() error { _, err := p.TruncateTo(h.BaseOffset); return err }
			if h.BaseOffset < p.LogStartOffset() {
				cut = func() error { return p.TruncateFullyAndStartAt(h.BaseOffset) }
			}
			if err := cut(); err != nil {
				b.logger.Error("cut back to the start of a batch", "topic", key.topic, "partition", key.index, "offset", h.BaseOffset, "err", err)
				return fetchFailed
			}
		}
		if _, err := p.AppendReplica(rp.RecordBatches, nowMs()); err != nil {
			b.logger.Error("replica append", "topic", key.topic, "partition", key.index, "err", err)
			return fetchFailed
		}
		return fetchAppended
	}
	return fetchNothing
}

// followLeaderMarks takes the leader's high watermark and log start from
// its answer, once what came with it is durable here; it reports whether
// it went through.
func (b *Broker) followLeaderMarks(key partitionKey, p *partition.Partition, rp *kmsg.FetchResponseTopicPartition) bool {
	if err := p.SetFollowerHW(rp.HighWatermark); err != nil {
		return false
	}
	// Records the leader deleted (retention, DeleteRecords) go here too,
	// as far as this replica's high watermark allows: a replica elected
	// later never shows them again.
	if start := min(rp.LogStartOffset, p.HighWatermark()); start > p.LogStartOffset() {
		if _, err := p.DeleteRecordsBefore(start); err != nil {
			b.logger.Error("follow the leader's log start", "topic", key.topic, "partition", key.index, "offset", start, "err", err)
		}
	}
	return true
}

// resetOutOfRange handles a leader that has no offset this replica could
// fetch from. Below the leader's log start (the replica was away while
// the leader deleted what it lacks), it starts its log again at the
// leader's log start; past the leader's high watermark (the leader lost
// records this replica holds and no epoch says where: an unclean
// election; only a replica without batches fetches without an epoch that
// would show where), it cuts its log back to it. It reports whether it
// did.
func (b *Broker) resetOutOfRange(key partitionKey, p *partition.Partition, rp *kmsg.FetchResponseTopicPartition) bool {
	at := p.FlushedOffset()
	switch {
	case at < rp.LogStartOffset:
		if err := p.TruncateFullyAndStartAt(rp.LogStartOffset); err != nil {
			b.logger.Error("start the replica at the leader's log start", "topic", key.topic, "partition", key.index, "offset", rp.LogStartOffset, "err", err)
			return false
		}
		b.logger.Info("replica started at the leader's log start", "topic", key.topic, "partition", key.index, "from", at, "offset", rp.LogStartOffset)
		return true
	case rp.HighWatermark >= 0 && at > rp.HighWatermark:
		cut := func() error { _, err := p.TruncateTo(rp.HighWatermark); return err }
		if p.LogStartOffset() > rp.HighWatermark {
			cut = func() error { return p.TruncateFullyAndStartAt(rp.HighWatermark) }
		}
		if err := cut(); err != nil {
			b.logger.Error("truncate to the leader's high watermark", "topic", key.topic, "partition", key.index, "offset", rp.HighWatermark, "err", err)
			return false
		}
		b.logger.Info("truncated replica ahead of its leader", "topic", key.topic, "partition", key.index, "from", at, "offset", rp.HighWatermark)
		return true
	}
	b.logger.Info("replica fetch", "topic", key.topic, "partition", key.index, "err", kerr.OffsetOutOfRange, "offset", at)
	return false
}

// brokerEpoch is this node's broker epoch in its image (-1 alone).
func (b *Broker) brokerEpoch() int64 {
	epoch := int64(-1)
	b.ctrl.View(func(im *metadata.Image) {
		if br, ok := im.Brokers[b.cfg.NodeID]; ok && br.Incarnation == b.incarnation {
			epoch = br.Epoch
		}
	})
	return epoch
}
