package outbox_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
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

// TestCLISkipUnblocksARelay drives the way past a refused event from the
// command line: the relay (weir outbox relay) logs the event Kafka
// refuses and the command that skips it; weir outbox skip records the
// skip; the relay then publishes the rest and marks every row sent.
// weir outbox release of a relay id that left nothing claimed settles
// nothing, and weir outbox drop-slot of a relay with no slot drops
// nothing.
func TestCLISkipUnblocksARelay(t *testing.T) {
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	limit := "1024"
	adm := kadm.NewClient(cl)
	for topic, cfg := range map[string]map[string]*string{"ok": nil, "tiny": {"max.message.bytes": &limit}} {
		if resp, err := adm.CreateTopic(ctx, 1, 1, cfg, topic); err != nil || resp.Err != nil {
			t.Fatal(err, resp.Err)
		}
	}
	if out, err := weirCLI(ctx, "outbox", "migrate", "--dsn", dsn); err != nil {
		t.Fatalf("migrate: %q, %v", out, err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	big := make([]byte, 4096)
	crand.Read(big) // incompressible: over the topic's limit once compressed
	var refused int64
	for i, ev := range []outbox.Event{{Topic: "ok"}, {Topic: "tiny", Payload: big}, {Topic: "ok"}} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			id, err := outbox.Write(ctx, tx, ev)
			if i == 1 {
				refused = id
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	rctx, stop := context.WithCancel(ctx)
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- weirCLIWriter(rctx, logs, "outbox", "relay", "--dsn", dsn, "--brokers", b.Addr(), "--relay-id", "cli",
			"--batch-size", "1", "--poll-interval", "10ms", "--transaction-timeout", "4s")
	}()
	want := fmt.Sprintf("weir outbox skip --table weir_outbox --relay-id cli --id %d", refused)
	for !strings.Contains(logs.String(), want) {
		select {
		case <-ctx.Done():
			t.Fatalf("the relay logged no %q: %s", want, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	out, err := weirCLI(ctx, "outbox", "skip", "--dsn", dsn, "--brokers", b.Addr(), "--relay-id", "cli", "--id", strconv.FormatInt(refused, 10), "--reason", "too large")
	if err != nil || !strings.Contains(out, fmt.Sprintf("relay cli will skip event %d", refused)) {
		t.Fatalf("skip: %q, %v", out, err)
	}
	for {
		var unsent int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM weir_outbox WHERE state <> 'sent'`).Scan(&unsent); err != nil {
			t.Fatal(err)
		}
		if unsent == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d rows not sent after the skip; logs: %s", unsent, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("relay: %v", err)
	}
	if !strings.Contains(logs.String(), "published 2 events") {
		t.Errorf("relay output lacks its count of 2 published events: %s", logs.String())
	}

	out, err = weirCLI(ctx, "outbox", "release", "--dsn", dsn, "--brokers", b.Addr(), "--relay-id", "cli")
	if err != nil || !strings.Contains(out, "0 rows of its committed batch marked sent, 0 rows released") {
		t.Fatalf("release: %q, %v", out, err)
	}
	out, err = weirCLI(ctx, "outbox", "drop-slot", "--dsn", dsn, "--relay-id", "never-ran")
	if err != nil || !strings.Contains(out, "slot (none), publication (none) dropped") {
		t.Fatalf("drop-slot: %q, %v", out, err)
	}
}

// weirCLIWriter is weirCLI writing its output to w as it runs.
func weirCLIWriter(ctx context.Context, w io.Writer, args ...string) error {
	root := &cobra.Command{Use: "weir", SilenceUsage: true, SilenceErrors: true}
	cli.AddClientCommands(root)
	root.SetOut(w)
	root.SetErr(w)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
