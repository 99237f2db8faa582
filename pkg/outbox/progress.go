package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The progress topic holds two records per relay id, each under its own
// key so that compaction keeps the latest of each:
//
//	batch/<token>/<relay id>  the last batch the relay committed: its number and event ids
//	fence/<relay id>          written by each incarnation at start (see readProgress)
//
// The token (see store.startIncarnation) ties batch records to one
// database's history of the relay id.
//
// Both go to partition 0, so that one partition orders everything a relay
// id ever wrote.
const (
	batchKeyPrefix = "batch/"
	fenceKeyPrefix = "fence/"
)

// progress is the value of a progress record.
type progress struct {
	Relay       string  `json:"relay"`
	Token       string  `json:"token"`
	Incarnation int64   `json:"incarnation"`
	Batch       int64   `json:"batch,omitempty"`
	IDs         []int64 `json:"ids,omitempty"`
}

// progressRecord is the record that commits with batch b's events.
func progressRecord(topic, relayID, token string, inc int64, b *batch) (*kgo.Record, error) {
	v, err := json.Marshal(progress{Relay: relayID, Token: token, Incarnation: inc, Batch: b.number, IDs: b.ids()})
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Key: batchKey(relayID, token), Value: v}, nil
}

// batchKey is the key of a relay's batch records.
func batchKey(relayID, token string) []byte {
	return []byte(batchKeyPrefix + token + "/" + relayID)
}

// ensureProgressTopic creates the progress topic, compacted with one
// partition, unless it exists. Its segments are small (16 MiB) because
// compaction only cleans closed segments and every relay start reads the
// topic from its start: a 1 GiB active segment of batch records would
// make that read slow.
func ensureProgressTopic(ctx context.Context, cl *kgo.Client, topic string) error {
	compact, segment := "compact", "16777216"
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, 1, -1,
		map[string]*string{"cleanup.policy": &compact, "segment.bytes": &segment}, topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, kerr.TopicAlreadyExists):
		return fmt.Errorf("outbox: create progress topic %s: %w", topic, err)
	}
	// A topic created beforehand must only compact: a batch record
	// removed by retention would make a relay that crashed before
	// marking the batch sent publish it again.
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err == nil && len(rcs) == 1 {
		err = rcs[0].Err
	}
	if err != nil {
		return fmt.Errorf("outbox: describe progress topic %s: %w", topic, err)
	}
	if len(rcs) != 1 {
		return fmt.Errorf("outbox: describe progress topic %s: %d answers", topic, len(rcs))
	}
	for _, c := range rcs[0].Configs {
		if c.Key == "cleanup.policy" && (c.Value == nil || *c.Value != compact) {
			v := "<none>"
			if c.Value != nil {
				v = *c.Value
			}
			return fmt.Errorf("outbox: progress topic %s has cleanup.policy=%s; it must be compact alone, or retention could delete the record of published batches (alter it, or name another topic)", topic, v)
		}
	}
	return nil
}

// writeFence commits a fence record for incarnation inc and returns its
// offset. Its first produce makes the client call InitProducerId, which
// fences the previous incarnation's producer and aborts the transaction
// it left open (KIP-98): from here on no older incarnation can commit.
func writeFence(ctx context.Context, cl *kgo.Client, topic, relayID, token string, inc int64) (int64, error) {
	v, err := json.Marshal(progress{Relay: relayID, Token: token, Incarnation: inc})
	if err != nil {
		return 0, err
	}
	return commitFence(ctx, cl, &kgo.Record{Topic: topic, Key: []byte(fenceKeyPrefix + relayID), Value: v})
}

// commitFence commits rec, a fence record, in a transaction of its own
// and returns its offset.
func commitFence(ctx context.Context, cl *kgo.Client, rec *kgo.Record) (int64, error) {
	if err := cl.BeginTransaction(); err != nil {
		return 0, fmt.Errorf("outbox: begin fence transaction: %w", err)
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return 0, errors.Join(fmt.Errorf("outbox: write fence record: %w", err), abort(ctx, cl))
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return 0, fmt.Errorf("outbox: commit fence record: %w", err)
	}
	return rec.Offset, nil
}

// readProgress reads the progress topic, read_committed, from its start
// up to and including the fence record at fenceOffset, and returns the
// last batch relayID committed against the database whose token is
// given (nil if none).
//
// Reading to the fence, not to the end offset seen at some moment, is
// what makes the answer complete: the fence was committed after
// InitProducerId settled every earlier transaction of this relay id, and
// a read_committed fetch returns it only once every transaction before it
// in the partition, ours or other relays', is settled.
func readProgress(ctx context.Context, cfg RelayConfig, token string, fenceOffset int64) (*progress, *skips, error) {
	var last *progress
	sk := &skips{}
	key, skipPrefix := string(batchKey(cfg.RelayID, token)), pollSkipPrefix(cfg.RelayID, token)
	err := scanProgress(ctx, cfg, func(k string) bool { return k == key || strings.HasPrefix(k, skipPrefix) }, fenceOffset,
		func(offset int64, k string, value []byte) error {
			if k != key {
				return sk.add(offset, value)
			}
			var p progress
			if err := json.Unmarshal(value, &p); err != nil {
				return fmt.Errorf("outbox: progress record at offset %d: %w", offset, err)
			}
			last = &p
			return nil
		})
	if err != nil {
		return nil, nil, err
	}
	return last, sk, nil
}

// scanProgress reads the progress topic, read_committed, from its start
// up to the fence record at fenceOffset and calls apply, in order, with
// every record before the fence whose key match accepts. An error from
// apply ends the scan.
func scanProgress(ctx context.Context, cfg RelayConfig, match func(key string) bool, fenceOffset int64, apply func(offset int64, key string, value []byte) error) error {
	cl, err := kgo.NewClient(progressReaderOpts(cfg)...)
	if err != nil {
		return fmt.Errorf("outbox: progress reader: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var scanErr error
		fs.EachError(func(t string, p int32, err error) {
			scanErr = errors.Join(scanErr, fmt.Errorf("outbox: read progress %s/%d: %w", t, p, err))
		})
		if scanErr != nil {
			return scanErr
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= fenceOffset {
				done = true
			}
			if done || scanErr != nil || !match(string(r.Key)) {
				return
			}
			scanErr = apply(r.Offset, string(r.Key), r.Value)
		})
		if scanErr != nil || done {
			return scanErr
		}
	}
}

// progressReaderOpts are the options of the client that reads the
// progress topic.
// cfg.ClientOpts come before the options reconciliation rests on, so
// that they cannot replace them (later options win).
func progressReaderOpts(cfg RelayConfig) []kgo.Opt {
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	return append(opts,
		kgo.ConsumeTopics(), // only the partition below
		kgo.ConsumerGroup(""),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.ProgressTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The reader produces nothing; producer settings in ClientOpts
		// are for the relay's producer, which also overrides acks.
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
}

// abort ends the open transaction without committing, dropping what is
// still buffered.
func abort(ctx context.Context, cl *kgo.Client) error {
	if err := cl.AbortBufferedRecords(ctx); err != nil {
		return fmt.Errorf("outbox: abort buffered records: %w", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("outbox: abort transaction: %w", err)
	}
	return nil
}

// partitioner sends progress records to partition 0 and everything else
// to the configured partitioner.
type partitioner struct {
	progressTopic string
	events        kgo.Partitioner
}

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == p.progressTopic {
		return firstPartition{}
	}
	return p.events.ForTopic(topic)
}

// firstPartition puts every record in partition 0.
type firstPartition struct{}

func (firstPartition) RequiresConsistency(*kgo.Record) bool { return true }
func (firstPartition) Partition(*kgo.Record, int) int       { return 0 }

// isFenced says whether err means the transaction coordinator fenced our
// producer: a producer with our transactional id initialised after ours,
// or the coordinator aborted a transaction of ours that outlived its
// timeout. Run asks the database which of the two it was.
func isFenced(err error) bool {
	return errors.Is(err, ErrFenced) ||
		errors.Is(err, kerr.ProducerFenced) ||
		errors.Is(err, kerr.InvalidProducerEpoch)
}
