package outbox

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRelay measures relay throughput from table to topic: b.N
// pending events (100-byte payloads, 16 keys, a 3-partition topic on an
// embedded durable Weir, PostgreSQL with fsync off) published by one or
// two relays (different relay ids), from their start until they have
// marked every row sent, at several batch sizes. Run it with a fixed
// count: -benchtime 20000x.
func BenchmarkRelay(b *testing.B) {
	for _, c := range []struct{ relays, size int }{{1, 10}, {1, 100}, {1, 1000}, {2, 100}, {2, 1000}} {
		b.Run(fmt.Sprintf("relays=%d/batch=%d", c.relays, c.size), func(b *testing.B) {
			e := newEnv(b)
			ctx := testCtx(b)
			_, err := e.pool.Exec(ctx,
				`INSERT INTO weir_outbox (topic, key, payload, headers)
				 SELECT 'orders', convert_to('customer-' || (i % 16), 'UTF8'), convert_to(repeat('x', 100), 'UTF8'), '{"type": "order-placed"}'
				 FROM generate_series(1, $1) AS i`, b.N)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			rctx, cancel := context.WithCancel(context.Background())
			var relays []*Relay
			done := make(chan error, c.relays)
			for i := range c.relays {
				r, err := NewRelay(e.pool, e.config(fmt.Sprintf("bench-%d", i), c.size))
				if err != nil {
					b.Fatal(err)
				}
				relays = append(relays, r)
				go func() { done <- r.Run(rctx) }()
			}
			published := func() (events, txns int64) {
				for _, r := range relays {
					s := r.Stats()
					events, txns = events+s.Events, txns+s.Batches
				}
				return events, txns
			}
			// Poll the relays' counters, not the table: a count over the
			// table would compete with the relays for the database.
			for n, _ := published(); n < int64(b.N); n, _ = published() {
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			for range relays {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			e.waitAllSent(b.N)
			_, txns := published()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(txns), "txns")
		})
	}
}
