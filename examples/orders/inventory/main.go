// Command inventory is the inventory service of the orders example: it
// consumes "order placed" events and takes each order's quantity off the
// stock of its item. The stock change, the order id (its idempotency key)
// and the consumer's offset commit in one PostgreSQL transaction through
// pkg/dedup's PostgreSQL store, and on every assignment the consumer
// starts from the offsets stored there: each order is applied exactly
// once, however often it is delivered or published.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/orders/model"
	"github.com/weir-broker/weir/pkg/dedup"
)

const group = "inventory"

func main() {
	dsn := flag.String("dsn", "", "PostgreSQL connection string of the inventory database (required)")
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	instance := flag.String("instance", "inventory-1", "this instance's group.instance.id (static membership)")
	flag.Parse()
	if *dsn == "" || *brokers == "" || *instance == "" {
		fmt.Fprintln(os.Stderr, "inventory: --dsn, --brokers and --instance are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dsn, strings.Split(*brokers, ","), *instance); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dsn string, brokers []string, instance string) error {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrate(ctx, pool); err != nil {
		return err
	}
	store, err := dedup.NewPGStore(ctx, pool, dedup.PGOptions{})
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		// A static member: a restarted instance takes its predecessor's
		// place at once instead of waiting out its session timeout.
		kgo.InstanceID(instance),
		kgo.ConsumeTopics(model.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		// Offsets stored with the stock changes win over the group's.
		kgo.AdjustFetchOffsetsFn(store.AdjustOffsets(group)),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	keyFn := dedup.KeyFromHeader(model.OrderIDHeader)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Fetch and group errors (a broker restarting, say) are retried
		// by the client; no record is handed out past a failed fetch.
		fetches.EachError(func(topic string, partition int32, err error) {
			fmt.Fprintf(os.Stderr, "inventory: fetch %s[%d]: %v\n", topic, partition, err)
		})
		var procErr error
		fetches.EachRecord(func(r *kgo.Record) {
			if procErr != nil {
				return
			}
			_, procErr = store.ProcessRecordTx(ctx, group, keyFn, r, applyOrder)
		})
		if procErr != nil {
			// Later records of this poll were not applied: stop, and let
			// the next run start from the offsets stored with the stock.
			return procErr
		}
		// The Kafka commit only shows the group's lag; the offsets that
		// count are the ones committed with the stock.
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "inventory: kafka commit:", err)
		}
	}
}

// applyOrder takes the order's quantity off its item's stock and records
// the move, inside the transaction that records the order id and offset.
func applyOrder(tx pgx.Tx, r *kgo.Record) error {
	var o model.Order
	if err := json.Unmarshal(r.Value, &o); err != nil {
		return fmt.Errorf("order event at %s[%d]@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	ctx := context.Background()
	tag, err := tx.Exec(ctx, "UPDATE stock SET quantity = quantity - $2 WHERE item = $1", o.Item, o.Quantity)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("order %d: unknown item %q", o.ID, o.Item)
	}
	_, err = tx.Exec(ctx, "INSERT INTO stock_moves (order_id, item, quantity) VALUES ($1, $2, $3)", o.ID, o.Item, o.Quantity)
	return err
}

// migrate creates the stock (every item at model.InitialStock) and the
// stock moves, a log that has no unique constraint so that an order
// applied twice would show.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS stock (item text PRIMARY KEY, quantity bigint NOT NULL);
		CREATE TABLE IF NOT EXISTS stock_moves (order_id bigint NOT NULL, item text NOT NULL, quantity int NOT NULL)`); err != nil {
		return err
	}
	for _, item := range model.Items {
		if _, err := pool.Exec(ctx, "INSERT INTO stock VALUES ($1, $2) ON CONFLICT DO NOTHING", item, model.InitialStock); err != nil {
			return err
		}
	}
	return nil
}
