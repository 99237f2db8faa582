package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// lagLine returns the row for topic/partition in the output of describe
// or reset-offsets, split in columns.
func lagLine(t *testing.T, out, topic, partition string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == topic && f[1] == partition {
			return f
		}
	}
	t.Fatalf("no row for %s[%s] in:\n%s", topic, partition, out)
	return nil
}

func TestGroupListDescribeResetDelete(t *testing.T) {
	b := startCluster(t)
	mustRun(t, b, "", "topic", "create", "jobs", "--partitions", "2")
	mustRun(t, b, "a\nb\nc\n", "produce", "jobs", "--partition", "0")
	mustRun(t, b, "d\ne\n", "produce", "jobs", "--partition", "1")
	mustRun(t, b, "", "consume", "jobs", "--group", "workers", "-n", "5")

	out := mustRun(t, b, "", "group", "list")
	if !strings.Contains(out, "workers") || !strings.Contains(out, "Empty") || !strings.Contains(out, "consumer") {
		t.Fatalf("group list printed:\n%s", out)
	}
	if out := mustRun(t, b, "", "group", "list", "--state", "Stable"); strings.Contains(out, "workers") {
		t.Fatalf("list of Stable groups shows an empty one:\n%s", out)
	}

	out = mustRun(t, b, "", "group", "describe", "workers")
	for p, want := range map[string][]string{"0": {"3", "3", "0"}, "1": {"2", "2", "0"}} {
		if got := lagLine(t, out, "jobs", p)[2:5]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("partition %s: committed, high watermark, lag = %v, want %v\n%s", p, got, want, out)
		}
	}
	if !strings.Contains(out, "total lag: 0") || !strings.Contains(out, "state: Empty") {
		t.Errorf("describe printed:\n%s", out)
	}

	// Rewind partition 0 to offset 1: two records to consume again.
	out = mustRun(t, b, "", "group", "reset-offsets", "workers", "--topic", "jobs", "--partition", "0", "--to", "1", "--dry-run")
	if f := lagLine(t, out, "jobs", "0"); f[2] != "3" || f[3] != "1" {
		t.Fatalf("dry run printed:\n%s", out)
	}
	if !strings.Contains(mustRun(t, b, "", "group", "describe", "workers"), "total lag: 0") {
		t.Fatal("--dry-run changed the offsets")
	}
	mustRun(t, b, "", "group", "reset-offsets", "workers", "--topic", "jobs", "--partition", "0", "--to", "1")
	out = mustRun(t, b, "", "group", "describe", "workers")
	if f := lagLine(t, out, "jobs", "0"); f[2] != "1" || f[4] != "2" || !strings.Contains(out, "total lag: 2") {
		t.Fatalf("after reset to 1:\n%s", out)
	}
	if out := mustRun(t, b, "", "consume", "jobs", "--group", "workers", "-n", "2"); out != "b\nc\n" {
		t.Fatalf("consume after the reset printed %q", out)
	}
	mustRun(t, b, "", "group", "reset-offsets", "workers", "--topic", "jobs", "--to", "start")
	if out := mustRun(t, b, "", "group", "describe", "workers"); !strings.Contains(out, "total lag: 5") {
		t.Fatalf("after reset to start:\n%s", out)
	}
	mustRun(t, b, "", "group", "reset-offsets", "workers", "--topic", "jobs", "--to", "end")
	if out := mustRun(t, b, "", "group", "describe", "workers"); !strings.Contains(out, "total lag: 0") {
		t.Fatalf("after reset to end:\n%s", out)
	}

	if out := mustRun(t, b, "", "group", "delete", "workers"); out != "deleted group workers\n" {
		t.Fatalf("delete printed %q", out)
	}
	if out := mustRun(t, b, "", "group", "list"); strings.Contains(out, "workers") {
		t.Fatalf("deleted group still listed:\n%s", out)
	}
	if r := run(t, b, "", "group", "describe", "workers"); r.err == nil {
		t.Fatal("describe of a deleted group succeeded")
	}
	if r := run(t, b, "", "group", "delete", "workers"); r.err == nil || !strings.Contains(r.err.Error(), "GROUP_ID_NOT_FOUND") {
		t.Fatalf("second delete: %v", r.err)
	}
}

func TestGroupCommandsRefuseToTouchAnActiveGroup(t *testing.T) {
	b := startCluster(t)
	mustRun(t, b, "", "topic", "create", "jobs", "--partitions", "1")
	mustRun(t, b, "a\n", "produce", "jobs")
	cl, err := kgo.NewClient(kgo.SeedBrokers(b), kgo.ConsumerGroup("live"), kgo.ConsumeTopics("jobs"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(cl.PollFetches(ctx).Records()) == 0 && ctx.Err() == nil {
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, b, "", "group", "describe", "live")
	if !strings.Contains(out, "state: Stable") || !strings.Contains(out, "members: 1") || !strings.Contains(out, "jobs:0") {
		t.Fatalf("describe of an active group:\n%s", out)
	}
	if r := run(t, b, "", "group", "reset-offsets", "live", "--topic", "jobs", "--to", "start"); r.err == nil || !strings.Contains(r.err.Error(), "stop its consumers") {
		t.Fatalf("reset of an active group: %v", r.err)
	}
	if r := run(t, b, "", "group", "delete", "live"); r.err == nil || !strings.Contains(r.err.Error(), "NON_EMPTY_GROUP") {
		t.Fatalf("delete of an active group: %v", r.err)
	}
}
