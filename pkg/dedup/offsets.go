package dedup

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ProcessRecordTx applies one consumed record exactly once into the
// database: in a single transaction it records the record's idempotency
// key (taken by keyFn), runs fn unless the key was already recorded, and
// stores r.Offset+1 as group's next offset for r's topic and partition.
// All three commit together; if fn or the commit fails, none of them is
// stored and the record is processed again on its next delivery.
//
// A record whose key was recorded before (a redelivery, or a duplicate an
// upstream producer wrote at another offset) is not handed to fn, but its
// offset is still stored, so the group moves past it. A record without a
// key returns the KeyFunc's error (ErrNoKey) and stores nothing.
//
// A stored offset only moves forward: replaying older records (a group
// reset to an earlier offset) leaves it where it is. AdjustOffsets seeks a
// consumer to the stored offsets when it is assigned partitions.
func (s *PGStore) ProcessRecordTx(ctx context.Context, group string, keyFn KeyFunc, r *kgo.Record, fn func(pgx.Tx, *kgo.Record) error) (ran bool, err error) {
	if group == "" {
		return false, errors.New("dedup: empty consumer group")
	}
	if r == nil {
		return false, errors.New("dedup: nil record")
	}
	if keyFn == nil {
		return false, errors.New("dedup: nil KeyFunc")
	}
	if fn == nil {
		return false, errNilHandler
	}
	if r.Topic == "" || r.Partition < 0 || r.Offset < 0 {
		return false, fmt.Errorf("dedup: record %q[%d]@%d has no place in a log", r.Topic, r.Partition, r.Offset)
	}
	key, err := keyFn(r)
	if err != nil {
		return false, err
	}
	if err := checkKey(key); err != nil {
		return false, fmt.Errorf("record %s[%d]@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	err = s.inTx(ctx, key, func(tx pgx.Tx, fresh bool) error {
		if fresh {
			ran = true
			if err := fn(tx, r); err != nil {
				return err
			}
		}
		return s.storeOffset(ctx, tx, group, r.Topic, r.Partition, r.Offset+1)
	})
	return ran, err
}

// storeOffset records next as group's next offset in topic's partition,
// unless a later one is stored already.
func (s *PGStore) storeOffset(ctx context.Context, tx pgx.Tx, group, topic string, partition int32, next int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO `+s.offsets+` AS o (consumer_group, topic, partition, next_offset, updated_at)
		VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()))
		ON CONFLICT (consumer_group, topic, partition) DO UPDATE
		SET next_offset = GREATEST(o.next_offset, EXCLUDED.next_offset), updated_at = EXCLUDED.updated_at`,
		group, topic, partition, next, s.stamp())
	if err != nil {
		return fmt.Errorf("dedup: store offset %s %s[%d]=%d: %w", group, topic, partition, next, err)
	}
	return nil
}

// Offsets returns group's stored next offsets, topic -> partition ->
// offset, for the given topics (all topics when none are given).
func (s *PGStore) Offsets(ctx context.Context, group string, topics ...string) (map[string]map[int32]int64, error) {
	q := `SELECT topic, partition, next_offset FROM ` + s.offsets + ` WHERE consumer_group = $1`
	args := []any{group}
	if len(topics) > 0 {
		q += ` AND topic = ANY($2)`
		args = append(args, topics)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("dedup: read offsets of %s: %w", group, err)
	}
	out := map[string]map[int32]int64{}
	var (
		topic     string
		partition int32
		next      int64
	)
	_, err = pgx.ForEachRow(rows, []any{&topic, &partition, &next}, func() error {
		if out[topic] == nil {
			out[topic] = map[int32]int64{}
		}
		out[topic][partition] = next
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dedup: read offsets of %s: %w", group, err)
	}
	return out, nil
}

// AdjustOffsets returns the function to pass to kgo.AdjustFetchOffsetsFn
// for a consumer in group: when the group assigns partitions, it replaces
// the offsets committed to Kafka with those stored by ProcessRecordTx for
// every assigned partition that has one, and leaves the others as Kafka
// has them. A consumer that died after a database commit but before its
// Kafka commit thus resumes after the last record applied to the
// database, and is not even handed the records it applied. If the
// database cannot be read the function returns the error: the client ends
// that group session without consuming and joins the group again.
//
// Wire it as
//
//	cl, err := kgo.NewClient(
//		kgo.SeedBrokers(brokers...),
//		kgo.ConsumerGroup(group),
//		kgo.ConsumeTopics(topic),
//		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
//		kgo.DisableAutoCommit(),
//		kgo.AdjustFetchOffsetsFn(store.AdjustOffsets(group)),
//	)
//
// and, for every polled record, call ProcessRecordTx with the same group,
// then commit the processed records to Kafka (cl.CommitRecords) so lag
// monitoring and tools that read the group's offsets see its progress.
// Commit to Kafka only records already processed (DisableAutoCommit with
// CommitRecords, or AutoCommitMarks with MarkCommitRecords): a partition
// with no offset in the database yet starts from its Kafka commit, and an
// automatic commit of polled but unprocessed records would skip them
// there.
func (s *PGStore) AdjustOffsets(group string) func(context.Context, map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	return func(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
		topics := make([]string, 0, len(assigned))
		for t := range assigned {
			topics = append(topics, t)
		}
		if len(topics) == 0 {
			return assigned, nil
		}
		stored, err := s.Offsets(ctx, group, topics...)
		if err != nil {
			return nil, err
		}
		for topic, parts := range assigned {
			for p := range parts {
				if next, ok := stored[topic][p]; ok {
					// Epoch -1: the stored offset carries no leader
					// epoch to validate against.
					parts[p] = kgo.NewOffset().At(next).WithEpoch(-1)
				}
			}
		}
		return assigned, nil
	}
}
