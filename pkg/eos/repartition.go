package eos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RepartitionTopic names the internal repartition topic name of the
// application (the consumer group) re-keys through, as Kafka Streams
// names its repartition topics.
func RepartitionTopic(app, name string) string { return app + "-" + name + "-repartition" }

// KeyFunc returns the key a record is re-keyed by. A nil key drops the
// record; an error aborts the transaction and stops the processor, as a
// Transform's does.
type KeyFunc func(in *kgo.Record) ([]byte, error)

// Repartition is the re-keying step of a Topology: every input record is
// written, under its new key, to RepartitionTopic(Config.Group, Name),
// whose partitions the default partitioner picks by key (murmur2, as
// Kafka's), so that all records of a new key reach one task of the
// aggregating stage.
type Repartition struct {
	Name string
	Key  KeyFunc
	// Partitions of the repartition topic when the processor creates it;
	// 0 takes the inputs' partition count.
	Partitions int32
	// PurgeInterval is how often the aggregating stage deletes the
	// records of the repartition topic it has committed
	// (repartition.purge.interval.ms in Kafka Streams); default 30s.
	PurgeInterval time.Duration
}

// Topology re-keys a stream and aggregates it by the new key, exactly
// once end to end. It runs two processors in one worker: the re-keying
// stage consumes Config.InputTopics and writes each record, re-keyed, to
// the repartition topic in the same transaction as its input offsets;
// the aggregating stage consumes the repartition topic read_committed
// and runs the Process function with its store and changelog, in
// transactions of its own. A record is thus in the repartition topic
// once (committed with the offsets that consumed it, or aborted and
// invisible), and counted once by the aggregate.
//
// The aggregating stage is the group Config.Group (the application id:
// its changelog is ChangelogTopic(Config.Group, Config.Store)); the
// re-keying stage is the group "<Config.Group>-<Name>-rekey", with the
// transactional id "<Config.TransactionalID>-<Name>-rekey". Kafka
// Streams runs both sub-topologies in one group; two groups let each
// stage keep its own assignment (the aggregating stage's co-partitioned
// one) with nothing beyond the public group protocol.
type Topology struct {
	rekey, agg *Processor
	rp         Repartition
	topic      string
}

// NewRepartitioned creates a Topology: cfg configures the aggregating
// stage as for NewStateful, except that its input is the repartition
// topic; cfg.InputTopics are the re-keying stage's inputs.
func NewRepartitioned(cfg Config, rp Repartition, fn Process) (*Topology, error) {
	switch {
	case rp.Name == "":
		return nil, errors.New("eos: a repartition name is required")
	case rp.Key == nil:
		return nil, errors.New("eos: a repartition key function is required")
	case rp.Partitions < 0:
		return nil, fmt.Errorf("eos: repartition partitions %d: must be positive, or 0 for the inputs' count", rp.Partitions)
	case cfg.TransactionalID == "" || cfg.Group == "":
		return nil, errors.New("eos: a transactional id and a consumer group are required")
	}
	if rp.PurgeInterval <= 0 {
		rp.PurgeInterval = 30 * time.Second
	}
	topic := RepartitionTopic(cfg.Group, rp.Name)
	rcfg := cfg
	rcfg.Group = cfg.Group + "-" + rp.Name + "-rekey"
	rcfg.TransactionalID = cfg.TransactionalID + "-" + rp.Name + "-rekey"
	rcfg.OutputTopic = topic
	rcfg.Store, rcfg.StateDir, rcfg.OnCommit = "", "", nil
	rekey, err := New(rcfg, func(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
		k, err := rp.Key(in)
		if err != nil || k == nil {
			return nil, err
		}
		return []*kgo.Record{{Topic: topic, Key: k, Value: in.Value, Headers: in.Headers, Timestamp: in.Timestamp}}, nil
	})
	if err != nil {
		return nil, err
	}
	acfg := cfg
	acfg.InputTopics = []string{topic}
	agg, err := NewStateful(acfg, fn)
	if err != nil {
		rekey.Close()
		return nil, err
	}
	agg.purge = &purger{topic: topic, every: rp.PurgeInterval, last: time.Now(), next: map[int32]int64{}}
	return &Topology{rekey: rekey, agg: agg, rp: rp, topic: topic}, nil
}

// Aggregator is the aggregating stage: its QueryHandler serves the store.
func (t *Topology) Aggregator() *Processor { return t.agg }

// Run creates or checks the repartition topic, then runs both stages
// until ctx ends (nil) or one fails (its error, the other stopped).
func (t *Topology) Run(ctx context.Context) error {
	n, err := inputPartitions(ctx, t.rekey.adm, t.rekey.cfg.InputTopics)
	if err != nil {
		return stoppedOr(ctx, err)
	}
	if t.rp.Partitions > 0 {
		n = t.rp.Partitions
	}
	if err := ensureRepartition(ctx, t.rekey.adm, t.topic, n); err != nil {
		return stoppedOr(ctx, err)
	}
	// The aggregating stage's client learns the topic on its own.
	if _, err := awaitTopic(ctx, t.agg.adm, t.topic); err != nil {
		return stoppedOr(ctx, fmt.Errorf("eos: repartition topic %s: %w", t.topic, err))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		first error
		once  sync.Once
	)
	for _, p := range []*Processor{t.rekey, t.agg} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				once.Do(func() { first = err })
				cancel()
			}
		}()
	}
	wg.Wait()
	return first
}

// Close closes both stages; call it after Run has returned.
func (t *Topology) Close() {
	t.rekey.Close()
	t.agg.Close()
}

// ensureRepartition creates the repartition topic with the cluster's
// default replication factor (-1, KIP-464) and cleanup.policy=delete, or
// checks the one that exists: compaction would drop a re-keyed record
// before the aggregating stage reads it whenever a later one has the same
// key, and another partition count would send a key to another task than
// the one whose store holds it.
func ensureRepartition(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	resp, err := adm.CreateTopic(ctx, partitions, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("eos: creating repartition topic %s: %w", topic, err)
	}
	d, err := awaitTopic(ctx, adm, topic)
	if err != nil {
		return fmt.Errorf("eos: repartition topic %s: %w", topic, err)
	}
	if int32(len(d.Partitions)) != partitions {
		return fmt.Errorf("eos: repartition topic %s has %d partitions, want %d: a key would reach another task than the one holding its state; "+
			"delete the topic (after the application has drained it) so that the processor creates it", topic, len(d.Partitions), partitions)
	}
	policy, err := cleanupPolicy(ctx, adm, topic)
	if err != nil {
		return err
	}
	if strings.Contains(policy, "compact") {
		return fmt.Errorf("eos: repartition topic %s has cleanup.policy=%s: compaction drops re-keyed records before they are aggregated; "+
			"set cleanup.policy=delete on it (kafka-configs --alter --add-config cleanup.policy=delete) or delete it so that the processor creates it", topic, policy)
	}
	return nil
}

// awaitTopic describes a topic just created, waiting while the cluster
// does not know it yet: CreateTopics answers before every broker's
// metadata has the topic, and the aggregating stage, which starts at
// once, must find it.
func awaitTopic(ctx context.Context, adm *kadm.Client, topic string) (kadm.TopicDetail, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		details, err := adm.ListTopics(ctx, topic)
		if err == nil {
			d := details[topic]
			if err = d.Err; err == nil {
				return d, nil
			}
		}
		if !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, kerr.LeaderNotAvailable) {
			return kadm.TopicDetail{}, err
		}
		select {
		case <-ctx.Done():
			return kadm.TopicDetail{}, errors.Join(err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// purger deletes the records of a repartition topic up to the offsets
// the aggregating stage has committed, as Kafka Streams purges its
// repartition topics (DeleteRecords, KIP-107): once committed, nothing
// reads them again, and retention alone would keep them for days.
type purger struct {
	topic string
	every time.Duration
	last  time.Time
	next  map[int32]int64 // committed next offset per partition, not yet purged
}

// committed notes the offsets a committed transaction consumed.
func (pg *purger) committed(fs kgo.Fetches) {
	fs.EachRecord(func(r *kgo.Record) {
		if r.Topic == pg.topic {
			pg.next[r.Partition] = max(pg.next[r.Partition], r.Offset+1)
		}
	})
}

// maybePurge deletes up to the committed offsets once per interval. A
// failure is left for the next interval: the records are only kept
// longer.
func (pg *purger) maybePurge(ctx context.Context, adm *kadm.Client) {
	if len(pg.next) == 0 || time.Since(pg.last) < pg.every {
		return
	}
	pg.last = time.Now()
	offs := kadm.Offsets{}
	for part, at := range pg.next {
		offs.AddOffset(pg.topic, part, at, -1)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := adm.DeleteRecords(ctx, offs)
	if err != nil {
		return
	}
	resp.Each(func(r kadm.DeleteRecordsResponse) {
		if r.Err == nil {
			delete(pg.next, r.Partition)
		}
	})
}
