package dedup

import (
	"context"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The test servers run PostgreSQL with fsync off and Redis without
// persistence: these figures measure the stores' round trips, not a
// durable deployment's commit latency.

// BenchmarkPGProcessRecordTx applies one new record per iteration: key,
// effect row and offset in one transaction.
func BenchmarkPGProcessRecordTx(b *testing.B) {
	ctx := context.Background()
	pool := newPool(b, newDatabase(b))
	s := newPGStore(b, pool, PGOptions{})
	if _, err := pool.Exec(ctx, reservationsDDL); err != nil {
		b.Fatal(err)
	}
	keyFn := KeyFromOffset()
	b.ResetTimer()
	for i := range b.N {
		r := &kgo.Record{Topic: "orders", Partition: 0, Offset: int64(i)}
		_, err := s.ProcessRecordTx(ctx, "bench", keyFn, r, func(tx pgx.Tx, r *kgo.Record) error {
			_, err := tx.Exec(ctx, `INSERT INTO reservations (order_id, partition, record_offset) VALUES ($1, $2, $3)`,
				strconv.FormatInt(r.Offset, 10), r.Partition, r.Offset)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPGProcessDuplicate skips one already recorded key per
// iteration.
func BenchmarkPGProcessDuplicate(b *testing.B) {
	s := newPGStore(b, newPool(b, newDatabase(b)), PGOptions{})
	if err := s.MarkProcessed("order-1"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if ran, err := s.Process("order-1", func() error { return nil }); ran || err != nil {
			b.Fatal(ran, err)
		}
	}
}

// BenchmarkRedisProcess claims, runs and marks done one new key per
// iteration.
func BenchmarkRedisProcess(b *testing.B) {
	s := newRedisStore(b, RedisOptions{})
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Process(strconv.Itoa(i), func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
