package broker

// The driver of the transaction coordinator: internal/txn decides, this
// file does its I/O. Transaction state is kept in the compacted internal
// topic __transaction_state, one record per transactional id (keyed by the
// id, its partition chosen as Kafka chooses it), each made durable before
// the coordinator acts on it. Markers are written straight to the local
// partitions: on one node the coordinator leads every partition.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/partition"
	"github.com/weir-broker/weir/internal/txn"
)

// TxnStateTopic is where the transaction coordinator keeps its state.
const TxnStateTopic = "__transaction_state"

// txnDriver owns the coordinator and its state topic. mu guards loaded.
type txnDriver struct {
	b      *Broker
	c      *txn.Coordinator
	mu     sync.Mutex
	loaded bool
	// afterVerify, set only by tests, runs once the coordinator has
	// confirmed a transactional write to tp and before it is appended.
	afterVerify atomic.Pointer[func(tp txn.TopicPartition)]
}

// verified runs the test hook, if any, for a write the coordinator
// confirmed.
func (d *txnDriver) verified(tp txn.TopicPartition) {
	if f := d.afterVerify.Load(); f != nil {
		(*f)(tp)
	}
}

// newTxnDriver builds the driver; the coordinator is closed when the
// broker stops, before its partitions close.
func newTxnDriver(b *Broker) *txnDriver {
	d := &txnDriver{b: b}
	s := b.settings
	d.c = txn.New(txn.Config{
		MaxTimeoutMs:   s.Int("transaction.max.timeout.ms"),
		IDExpirationMs: s.Int("transactional.id.expiration.ms"),
	}, d, d, pidSource{b})
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		<-b.stop
		d.c.Close()
	}()
	return d
}

// maxSettleWait bounds how long a request waits for the previous
// transaction of its id to complete before it is answered
// CONCURRENT_TRANSACTIONS. Completing takes a marker write and an fsync;
// waiting that long spares the client a retry backoff, while a bound
// keeps failing marker writes from holding the connection's reader.
const maxSettleWait = time.Second

// whenSettled runs op, and runs it again each time the previous
// transaction of id finishes completing while op answers
// CONCURRENT_TRANSACTIONS, for up to maxSettleWait or until the broker
// stops; then the client gets CONCURRENT_TRANSACTIONS and retries.
func (d *txnDriver) whenSettled(c *txn.Coordinator, id string, op func() error) error {
	err := op()
	if !errors.Is(err, kerr.ConcurrentTransactions) {
		return err
	}
	timer := time.NewTimer(maxSettleWait)
	defer timer.Stop()
	for errors.Is(err, kerr.ConcurrentTransactions) {
		select {
		case <-c.Settled(id):
		case <-timer.C:
			return err
		case <-d.b.stop:
			return err
		}
		err = op()
	}
	return err
}

// pidSource hands the coordinator producer ids from the broker's blocks.
type pidSource struct{ b *Broker }

func (p pidSource) Next() (int64, error) { return p.b.nextProducerID() }

// coordinator returns the coordinator once its state is loaded, creating
// __transaction_state if create is set and it does not exist yet; nil
// when it does not exist and create is not set.
func (d *txnDriver) coordinator(create bool) (*txn.Coordinator, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loaded {
		return d.c, nil
	}
	b := d.b
	if !b.topicExists(TxnStateTopic) {
		if !create {
			return nil, nil
		}
		_, _, err := b.ctrl.CreateTopic(controller.CreateTopic{
			Name:              TxnStateTopic,
			Partitions:        int32(b.settings.Int("transaction.state.log.num.partitions")),
			ReplicationFactor: -1,
			Configs:           map[string]string{"cleanup.policy": "compact"},
			Internal:          true,
		})
		if err != nil && !controller.IsCode(err, kerr.TopicAlreadyExists) {
			return nil, fmt.Errorf("create %s: %w", TxnStateTopic, err)
		}
	}
	for i := int32(0); ; i++ {
		part, kerrc := b.partition(TxnStateTopic, i)
		if kerrc != nil {
			break
		}
		if err := d.replay(part); err != nil {
			return nil, err
		}
	}
	for _, err := range d.c.Recover(time.Now().UnixMilli()) {
		// Left prepared: the ticker retries it.
		b.logger.Error("transaction coordinator recovery", "err", err)
	}
	d.loaded = true
	return d.c, nil
}

func (d *txnDriver) replay(part *partition.Partition) error {
	hw := part.HighWatermark()
	for off := part.LogStartOffset(); off < hw; {
		data, err := part.Read(off, hw, 1<<20)
		if err != nil || len(data) == 0 {
			return fmt.Errorf("replay %s-%d at %d: %v", part.Topic, part.Index, off, err)
		}
		for len(data) > 0 {
			h, err := batch.ParseHeader(data)
			if err != nil {
				return fmt.Errorf("replay %s-%d at %d: %w", part.Topic, part.Index, off, err)
			}
			recs, err := batch.Records(data[:h.Size()])
			if err != nil {
				return fmt.Errorf("replay %s-%d at %d: %w", part.Topic, part.Index, h.BaseOffset, err)
			}
			for _, r := range recs {
				if r.Value == nil {
					d.c.Replay(string(r.Key), nil)
					continue
				}
				var m txn.Meta
				if err := json.Unmarshal(r.Value, &m); err != nil {
					return fmt.Errorf("replay %s-%d at %d: %w", part.Topic, part.Index, h.BaseOffset+int64(r.OffsetDelta), err)
				}
				d.c.Replay(string(r.Key), &m)
			}
			off = h.NextOffset()
			data = data[h.Size():]
		}
	}
	return nil
}

// Put implements txn.Store: one record, durable before it returns.
func (d *txnDriver) Put(id string, m *txn.Meta) error {
	n := int32(d.b.settings.Int("transaction.state.log.num.partitions"))
	part, kerrc := d.b.partition(TxnStateTopic, group.PartitionFor(id, n))
	if kerrc != nil {
		return kerrc
	}
	rec := batch.Record{Key: []byte(id)}
	if m != nil {
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		rec.Value = v
	}
	b := batch.Build(batch.Spec{Timestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{rec})
	h, _ := batch.ParseHeader(b)
	base, _, err := part.Append(b, h, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	return <-part.WaitDurable(base + 1)
}

// WriteMarkers implements txn.Markers: a marker in every partition of
// the transaction, all durable before it returns.
func (d *txnDriver) WriteMarkers(m *txn.Meta, commit bool) error {
	d.b.cfg.Faults.Pass(faults.TxnBeforeMarkers)
	var waits []<-chan error
	for _, tp := range m.Partitions {
		part, kerrc := d.b.partition(tp.Topic, tp.Partition)
		if kerrc != nil {
			continue // the topic was deleted: nothing left to mark
		}
		end, err := part.AppendMarker(m.ProducerID, m.ProducerEpoch, commit, 0)
		if err != nil {
			return fmt.Errorf("marker for %s-%d: %w", tp.Topic, tp.Partition, err)
		}
		waits = append(waits, part.WaitDurable(end))
	}
	// Each group's offsets live in one __consumer_offsets partition; a
	// marker there ends them, and the group shard then makes them
	// visible (commit) or drops them (abort).
	var shards []*groupShard
	for _, g := range m.Groups {
		s, err := d.b.groups.shardFor(g, true)
		if err != nil {
			return fmt.Errorf("group %q: %w", g, err)
		}
		if slices.Contains(shards, s) {
			continue
		}
		shards = append(shards, s)
		end, err := s.part.AppendMarker(m.ProducerID, m.ProducerEpoch, commit, 0)
		if err != nil {
			return fmt.Errorf("marker for group %q: %w", g, err)
		}
		waits = append(waits, s.part.WaitDurable(end))
	}
	for _, w := range waits {
		if err := <-w; err != nil {
			return err
		}
	}
	for _, s := range shards {
		s.completeTxn(m.ProducerID, commit)
	}
	d.b.cfg.Faults.Pass(faults.TxnBeforeComplete)
	return nil
}

// verifyTxnBatch is the KIP-890 check for a transactional batch.
func (b *Broker) verifyTxnBatch(topic string, partition int32, h batch.Header) error {
	c, err := b.txns.coordinator(false)
	if err != nil {
		return wrap(kerr.CoordinatorNotAvailable, err)
	}
	if c == nil {
		return kerr.InvalidProducerIDMapping
	}
	return c.InTransaction(h.ProducerID, h.ProducerEpoch, txn.TopicPartition{Topic: topic, Partition: partition})
}

// txnTicker aborts timed-out transactions and expires idle ids.
func (b *Broker) txnTicker() {
	defer b.wg.Done()
	t := time.NewTicker(time.Duration(b.settings.Int("transaction.abort.timed.out.transaction.cleanup.interval.ms")) * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			c, err := b.txns.coordinator(false)
			if err != nil || c == nil {
				continue
			}
			for _, err := range c.Tick(now.UnixMilli()) {
				b.logger.Error("transaction coordinator", "err", err)
			}
		}
	}
}
