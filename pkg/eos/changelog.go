package eos

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ChangelogTopic names store's changelog for the application (the
// consumer group), as Kafka Streams names its changelogs.
func ChangelogTopic(group, store string) string { return group + "-" + store + "-changelog" }

// inputPartitions returns the partition count the input topics share.
func inputPartitions(ctx context.Context, adm *kadm.Client, topics []string) (int32, error) {
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return 0, fmt.Errorf("eos: describing inputs: %w", err)
	}
	n := int32(-1)
	for _, topic := range topics {
		d, ok := details[topic]
		if !ok || d.Err != nil {
			return 0, fmt.Errorf("eos: input topic %s: %w", topic, errors.Join(d.Err, kerr.UnknownTopicOrPartition))
		}
		if n >= 0 && int32(len(d.Partitions)) != n {
			return 0, fmt.Errorf("eos: input topics of a stateful processor must have the same partition count: %s has %d, want %d", topic, len(d.Partitions), n)
		}
		n = int32(len(d.Partitions))
	}
	return n, nil
}

// ensureChangelog creates the changelog, compacted, with one partition
// per input partition and the cluster's default replication factor
// (-1, KIP-464), or checks the partition count of the one that exists.
// It returns the changelog's topic id (Metadata v10+, KIP-516), all
// zeros from a cluster without topic ids.
func ensureChangelog(ctx context.Context, adm *kadm.Client, topic string, partitions int32) (kadm.TopicID, error) {
	var none kadm.TopicID
	resp, err := adm.CreateTopic(ctx, partitions, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return none, fmt.Errorf("eos: creating changelog %s: %w", topic, err)
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return none, fmt.Errorf("eos: describing changelog %s: %w", topic, err)
	}
	d := details[topic]
	if d.Err != nil {
		return none, fmt.Errorf("eos: changelog %s: %w", topic, d.Err)
	}
	if int32(len(d.Partitions)) != partitions {
		return none, fmt.Errorf("eos: changelog %s has %d partitions, the inputs %d", topic, len(d.Partitions), partitions)
	}
	if err := checkCompacted(ctx, adm, topic); err != nil {
		return none, err
	}
	return d.ID, nil
}

// checkCompacted refuses a changelog whose cleanup.policy lacks compact,
// as Kafka Streams validates the internal topics it finds: under delete
// alone, retention removes changes the store still depends on, and a
// later restore silently loses state.
func checkCompacted(ctx context.Context, adm *kadm.Client, topic string) error {
	policy, err := cleanupPolicy(ctx, adm, topic)
	if err != nil {
		return err
	}
	for _, p := range strings.Split(policy, ",") {
		if strings.TrimSpace(p) == "compact" {
			return nil
		}
	}
	return fmt.Errorf("eos: changelog %s has cleanup.policy=%s: a changelog must be compacted, or retention deletes state the store depends on; "+
		"set cleanup.policy=compact on it (kafka-configs --alter --add-config cleanup.policy=compact) or delete it so that the processor creates it", topic, policy)
}

// cleanupPolicy returns topic's cleanup.policy, Kafka's default (delete)
// when the topic does not say.
func cleanupPolicy(ctx context.Context, adm *kadm.Client, topic string) (string, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return "", fmt.Errorf("eos: describing the configuration of %s: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return "", fmt.Errorf("eos: describing the configuration of %s: %w", topic, err)
	}
	policy := "delete"
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			policy = *c.Value
		}
	}
	return policy, nil
}

// changelogPartitioner sends changelog records to the partition they name
// (the task's) and everything else through the default partitioner.
type changelogPartitioner struct {
	changelog string
	dflt      kgo.Partitioner
}

func (c changelogPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == c.changelog {
		return manualPartitioner{}
	}
	return c.dflt.ForTopic(topic)
}

type manualPartitioner struct{}

func (manualPartitioner) RequiresConsistency(*kgo.Record) bool { return true }
func (manualPartitioner) Partition(r *kgo.Record, n int) int {
	if int(r.Partition) >= n {
		return n - 1 // cannot happen: the partition counts are checked
	}
	return int(r.Partition)
}

// restoreTask brings t up to the changelog's high watermark, read
// committed from t.applied. Reading to the high watermark rather than the
// last stable offset waits for an open transaction on the changelog to
// end: the committed input offsets depend on its outcome too.
func (p *Processor) restoreTask(ctx context.Context, t *task) error {
	ends, err := p.adm.ListEndOffsets(ctx, p.changelog)
	if err != nil {
		return fmt.Errorf("eos: changelog end: %w", err)
	}
	e, ok := ends.Lookup(p.changelog, t.partition)
	if !ok || e.Err != nil {
		return fmt.Errorf("eos: changelog %s/%d end: %w", p.changelog, t.partition, errors.Join(e.Err, kerr.UnknownTopicOrPartition))
	}
	end := e.Offset
	if t.applied > end || t.logID != p.changelogID {
		// The file applied another changelog: this one was deleted and
		// created again (an application reset), or it is shorter than
		// what the file applied. Start again from nothing.
		if err := t.wipe(); err != nil {
			return fmt.Errorf("eos: wiping %s: %w", t.path, err)
		}
		t.logID = p.changelogID
	}
	p.metrics.restoreRemaining(p.cfg.Store, t.partition, end-t.applied)
	if t.applied >= end {
		return nil
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.changelog: {t.partition: kgo.NewOffset().At(t.applied)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records show where each transaction ends, so the
		// position reaches the high watermark even when the log ends
		// with a marker or with aborted records.
		kgo.KeepControlRecords(),
	}, p.cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("eos: restore client: %w", err)
	}
	defer cl.Close()
	for t.applied < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fs.Err(); err != nil {
			return fmt.Errorf("eos: restoring %s/%d: %w", p.changelog, t.partition, err)
		}
		changes := map[string]change{}
		next := t.applied
		var n int64
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			changes[string(r.Key)] = change{value: r.Value}
			n++
		})
		if err := t.apply(changes, next); err != nil {
			return err
		}
		p.metrics.restored(p.cfg.Store, t.partition, n, end-t.applied)
	}
	return nil
}
