package outbox

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/weir-broker/weir/internal/testsvc"
)

// The relay runs as a child process (this test binary re-executed) in the
// tests that kill it; childRoleEnv selects that role.
const childRoleEnv = "WEIR_OUTBOX_CHILD"

// longRuns makes the randomized kill tests run many more rounds.
var longRuns = flag.Bool("outbox.long", false, "run the randomized kill tests for many rounds")

// pg is the PostgreSQL server of this test binary.
var pg *testsvc.Postgres

func TestMain(m *testing.M) {
	if os.Getenv(childRoleEnv) != "" {
		os.Exit(runChildRelay())
	}
	var err error
	if pg, err = testsvc.StartPostgres(); err != nil {
		fmt.Fprintln(os.Stderr, "start postgres:", err)
		os.Exit(1)
	}
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// runChildRelay runs a relay configured from the environment. With
// WEIR_OUTBOX_CRASH_POINT and WEIR_OUTBOX_CRASH_BATCH set it kills itself
// with SIGKILL at that point of its Nth batch, after printing
// "crash POINT BATCH ID,ID,..." on stdout.
func runChildRelay() int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("WEIR_OUTBOX_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pool:", err)
		return 1
	}
	defer pool.Close()
	size, _ := strconv.Atoi(os.Getenv("WEIR_OUTBOX_BATCH"))
	r, err := NewRelay(pool, RelayConfig{
		RelayID:      os.Getenv("WEIR_OUTBOX_RELAY"),
		Brokers:      []string{os.Getenv("WEIR_OUTBOX_BROKERS")},
		BatchSize:    size,
		PollInterval: 10 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		return 1
	}
	point := os.Getenv("WEIR_OUTBOX_CRASH_POINT")
	at, _ := strconv.Atoi(os.Getenv("WEIR_OUTBOX_CRASH_BATCH"))
	seen := 0
	out := bufio.NewWriter(os.Stdout)
	r.crashAt = func(p string, b *batch) {
		if p != point {
			return
		}
		if seen++; seen < at {
			return
		}
		ids := make([]string, len(b.events))
		for i, e := range b.events {
			ids[i] = strconv.FormatInt(e.id, 10)
		}
		if len(ids) == 0 {
			ids = []string{"-"}
		}
		fmt.Fprintf(out, "crash %s %d %s\n", p, b.number, strings.Join(ids, ","))
		out.Flush()
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
	if err := r.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}
