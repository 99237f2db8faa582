// Command orderservice is the order service of the orders example: it
// places orders, writing each order row and its "order placed" event in
// one PostgreSQL transaction through pkg/outbox, so an order exists if and
// only if its event will be published.
//
// It places orders until the orders table holds --orders rows, so a
// restart after a crash carries on where the committed rows end.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/weir-broker/weir/examples/orders/model"
	"github.com/weir-broker/weir/pkg/outbox"
)

func main() {
	dsn := flag.String("dsn", "", "PostgreSQL connection string of the order database (required)")
	total := flag.Int("orders", 500, "place orders until this many exist")
	pace := flag.Duration("pace", 2*time.Millisecond, "pause between two orders")
	flag.Parse()
	if *dsn == "" || *total <= 0 || *pace < 0 {
		fmt.Fprintln(os.Stderr, "orderservice: --dsn is required, --orders must be positive and --pace not negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dsn, *total, *pace); err != nil {
		fmt.Fprintln(os.Stderr, "orderservice:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dsn string, total int, pace time.Duration) error {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrate(ctx, pool); err != nil {
		return err
	}
	var placed int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&placed); err != nil {
		return err
	}
	for ; placed < total; placed++ {
		o := model.Order{Item: model.Items[rand.IntN(len(model.Items))], Quantity: 1 + rand.IntN(3)}
		if err := placeOrder(ctx, pool, o); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pace):
		}
	}
	fmt.Println("placed", placed)
	return nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := outbox.Migrate(ctx, pool); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS orders (
		id       bigserial PRIMARY KEY,
		item     text NOT NULL,
		quantity int  NOT NULL CHECK (quantity > 0)
	)`)
	return err
}

// placeOrder writes the order and its event in one transaction.
func placeOrder(ctx context.Context, pool *pgxpool.Pool, o model.Order) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "INSERT INTO orders (item, quantity) VALUES ($1, $2) RETURNING id",
			o.Item, o.Quantity).Scan(&o.ID); err != nil {
			return err
		}
		payload, err := json.Marshal(o)
		if err != nil {
			return err
		}
		_, err = outbox.Write(ctx, tx, outbox.Event{
			Topic:   model.Topic,
			Key:     []byte(o.Item),
			Payload: payload,
			Headers: map[string]string{model.OrderIDHeader: strconv.FormatInt(o.ID, 10)},
		})
		return err
	})
}
