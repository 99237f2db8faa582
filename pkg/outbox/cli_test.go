package outbox_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/cli"
	"github.com/weir-broker/weir/pkg/outbox"
	"github.com/weir-broker/weir/pkg/weir"
)

// weirCLI runs `weir args...` with the client commands until ctx ends.
func weirCLI(ctx context.Context, args ...string) (string, error) {
	root := &cobra.Command{Use: "weir", SilenceUsage: true, SilenceErrors: true}
	cli.AddClientCommands(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// TestCLIMigratesAndRelays drives `weir outbox migrate` and `weir outbox
// relay` against a real database and broker.
func TestCLIMigratesAndRelays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn, err := outbox.SharedPostgres().NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := weir.Start(ctx, weir.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("payments"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "payments"); err != nil {
		t.Fatal(err)
	}

	for range 2 { // migrate is idempotent
		out, err := weirCLI(ctx, "outbox", "migrate", "--dsn", dsn)
		if err != nil || out != "outbox table weir_outbox ready\n" {
			t.Fatalf("migrate: %q, %v", out, err)
		}
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const events = 30
	for i := range events {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := outbox.Write(ctx, tx, outbox.Event{Topic: "payments", Key: []byte{byte(i % 4)}, Payload: []byte("p")})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	rctx, stop := context.WithCancel(ctx)
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := weirCLI(rctx, "outbox", "relay", "--dsn", dsn, "--brokers", b.Addr(),
			"--relay-id", "cli", "--batch-size", "7", "--poll-interval", "10ms")
		done <- result{out, err}
	}()
	seen := 0
	for seen < events {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("saw %d of %d events", seen, events)
		}
		fs.EachRecord(func(*kgo.Record) { seen++ })
	}
	// Every row is marked once the relay has moved on; poll for it.
	for {
		var pending int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM weir_outbox WHERE state <> 'sent'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d rows not sent", pending)
		case <-time.After(10 * time.Millisecond):
		}
	}
	stop()
	res := <-done
	if res.err != nil {
		t.Fatalf("relay: %v (output %q)", res.err, res.out)
	}
	if !strings.Contains(res.out, "published 30 events in 5 transactions") {
		t.Errorf("relay printed %q", res.out)
	}
	// Info-level lines: one at start, one per batch.
	if n := strings.Count(res.out, `level=INFO msg="outbox relay started"`); n != 1 {
		t.Errorf("relay logged %d start lines, want 1: %q", n, res.out)
	}
	if n := strings.Count(res.out, `level=INFO msg="outbox batch published"`); n != 5 {
		t.Errorf("relay logged %d batch lines, want 5: %q", n, res.out)
	}
}
