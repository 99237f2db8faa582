package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/pkg/weir"
)

// These tests drive the commands end to end against a real Weir broker
// embedded through pkg/weir.

type runResult struct {
	stdout, stderr string
	err            error
}

// run executes `weir args...` with the client commands on a fresh root.
func run(t *testing.T, brokers string, stdin string, args ...string) runResult {
	t.Helper()
	root := &cobra.Command{Use: "weir", SilenceUsage: true, SilenceErrors: true}
	AddClientCommands(root)
	var stdout, stderr bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append(args, "--brokers", brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return runResult{stdout.String(), stderr.String(), err}
}

func mustRun(t *testing.T, brokers, stdin string, args ...string) string {
	t.Helper()
	r := run(t, brokers, stdin, args...)
	if r.err != nil {
		t.Fatalf("weir %s: %v (stderr %q)", strings.Join(args, " "), r.err, r.stderr)
	}
	return r.stdout
}

func startCluster(t *testing.T) string {
	t.Helper()
	// Groups form at once: tests should not wait out the initial
	// rebalance delay meant for consumers starting one by one.
	b, err := weir.Start(context.Background(), weir.Config{DataDir: t.TempDir(), Settings: map[string]string{
		"group.initial.rebalance.delay.ms": "0",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addr()
}

func TestTopicLifecycle(t *testing.T) {
	b := startCluster(t)
	out := mustRun(t, b, "", "topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=60000")
	if !strings.Contains(out, "created topic orders (3 partitions") {
		t.Errorf("create printed %q", out)
	}
	if r := run(t, b, "", "topic", "create", "orders"); r.err == nil || !strings.Contains(r.err.Error(), "TOPIC_ALREADY_EXISTS") {
		t.Errorf("second create: err = %v, want TOPIC_ALREADY_EXISTS", r.err)
	}
	if out := mustRun(t, b, "", "topic", "list"); out != "orders\n" {
		t.Errorf("list printed %q", out)
	}
	mustRun(t, b, "a\nb\n", "produce", "orders", "--partition", "1")

	out = mustRun(t, b, "", "topic", "describe", "orders")
	for _, want := range []string{"partitions: 3", "HIGH-WATERMARK", "retention.ms", "60000"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe output lacks %q:\n%s", want, out)
		}
	}

	mustRun(t, b, "", "topic", "alter", "orders", "--partitions", "4", "--config", "retention.ms=120000")
	out = mustRun(t, b, "", "topic", "describe", "orders")
	if !strings.Contains(out, "partitions: 4") || !strings.Contains(out, "120000") {
		t.Errorf("describe after alter:\n%s", out)
	}
	if r := run(t, b, "", "topic", "describe", "orders", "missing"); r.err == nil || !strings.Contains(r.err.Error(), "missing") {
		t.Errorf("describe of a missing topic: err = %v", r.err)
	}
	mustRun(t, b, "", "topic", "delete", "orders")
}

func TestProduceThenConsumeRoundTripsKeysAndValues(t *testing.T) {
	b := startCluster(t)
	mustRun(t, b, "", "topic", "create", "events", "--partitions", "2")
	bad := run(t, b, "k1=v1\nk2=v=2\n\nk3=\n", "produce", "events", "--key-separator", "=")
	if bad.err == nil || !strings.Contains(bad.err.Error(), "line 3") {
		t.Fatalf("produce of a line without separator: err = %v", bad.err)
	}
	r := run(t, b, "k1=v1\nk2=v=2\nk3=\n", "produce", "events", "--key-separator", "=", "-v", "--acks", "1")
	if r.err != nil || r.stdout != "" || !strings.Contains(r.stderr, "produced 3 records") {
		t.Fatalf("produce: err %v stdout %q stderr %q", r.err, r.stdout, r.stderr)
	}

	// The two lines read before the bad one were still produced.
	// It stops at the fifth record; the idle limit only bounds a failure,
	// and must outlast a slow first fetch on a loaded machine.
	out2 := mustRun(t, b, "", "consume", "events", "--format", "json", "-n", "5", "--timeout", "15s")
	got := map[string][]string{}
	for line := range strings.Lines(out2) {
		var rec jsonRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		got[*rec.Key] = append(got[*rec.Key], *rec.Value)
	}
	want := map[string][]string{"k1": {"v1", "v1"}, "k2": {"v=2", "v=2"}, "k3": {""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("consumed %v, want %v", got, want)
	}
}

func TestBadFlagsGiveOneClearError(t *testing.T) {
	b := startCluster(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"produce", "t", "--acks", "2"}, `invalid --acks "2"`},
		{[]string{"produce", "t", "--acks", "1", "--idempotent"}, "--idempotent requires --acks all"},
		{[]string{"consume", "t", "--from", "xyz"}, `invalid --from "xyz"`},
		{[]string{"consume", "t", "--format", "xml"}, `invalid --format "xml"`},
		{[]string{"consume", "nope", "--timeout", "1s"}, "UNKNOWN_TOPIC_OR_PARTITION"},
		{[]string{"topic", "create"}, "want one topic NAME"},
		{[]string{"topic", "alter", "t"}, "nothing to alter"},
		{[]string{"bench", "produce", "--acks", "0", "--idempotent"}, "--idempotent requires --acks all"},
	} {
		r := run(t, b, "", tc.args...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) || strings.Contains(r.err.Error(), "\n") {
			t.Errorf("weir %s: err = %v, want one line containing %q", strings.Join(tc.args, " "), r.err, tc.want)
		}
		if r.stdout != "" {
			t.Errorf("weir %s printed %q to stdout", strings.Join(tc.args, " "), r.stdout)
		}
	}
}

func TestBenchProduceThenConsumeReportsThroughput(t *testing.T) {
	b := startCluster(t)
	out := mustRun(t, b, "", "bench", "produce", "--records", "2000", "--partitions", "2")
	for _, want := range []string{"produced 2000 records of 100 bytes", "records/s", "MB/s", "p50", "p99", "p999"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench produce output lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, b, "", "bench", "consume", "--records", "2000")
	if !strings.Contains(out, "consumed 2000 records (200000 bytes)") || !strings.Contains(out, "records/s") {
		t.Errorf("bench consume output:\n%s", out)
	}
	if r := run(t, b, "", "bench", "consume", "--records", "5000"); r.err == nil || !strings.Contains(r.err.Error(), "holds 2000 records") {
		t.Errorf("bench consume of more records than exist: err = %v", r.err)
	}
}

func TestConsumeWithGroupResumesAfterCommittedOffsets(t *testing.T) {
	b := startCluster(t)
	mustRun(t, b, "", "topic", "create", "jobs", "--partitions", "1")
	mustRun(t, b, "1\n2\n3\n", "produce", "jobs")
	if out := mustRun(t, b, "", "consume", "jobs", "--group", "g", "-n", "2"); out != "1\n2\n" {
		t.Fatalf("first group consume printed %q", out)
	}
	if out := mustRun(t, b, "", "consume", "jobs", "--group", "g", "--timeout", "1s"); out != "3\n" {
		t.Fatalf("second group consume printed %q, want the one record not yet committed", out)
	}
	if out := mustRun(t, b, "", "consume", "jobs", "--from", "1", "--partition", "0", "-n", "1", "--format", "kv"); out != "\t2\n" {
		t.Fatalf("consume from offset 1 printed %q", out)
	}
}
