package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// debianPython is the interpreter Debian's python3-confluent-kafka is
// installed for; a python3 earlier on PATH (pyenv, a virtualenv) may not
// see Debian's packages.
const debianPython = "/usr/bin/python3"

// confluentPython returns a python3 that can import confluent_kafka
// (librdkafka's Python binding).
func confluentPython(t *testing.T) string {
	t.Helper()
	py := debianPython
	if _, err := os.Stat(py); err != nil {
		if py, err = exec.LookPath("python3"); err != nil {
			t.Fatal("python3 is not installed; ./test.sh installs python3-confluent-kafka (apt-get install python3-confluent-kafka)")
		}
	}
	if out, err := exec.Command(py, "-c", "import confluent_kafka").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import confluent_kafka (%v: %s); ./test.sh installs python3-confluent-kafka (apt-get install python3-confluent-kafka)",
			py, err, bytes.TrimSpace(out))
	}
	return py
}

// librdkafka's transactional producer (through confluent_kafka) commits
// and aborts transactions spanning three partitions: its read_committed
// consumer sees exactly the committed records, its read_uncommitted one
// sees the aborted ones too, and franz-go reads the same at each level.
func TestLibrdkafkaTransactionsCommitAndAbortAtomically(t *testing.T) {
	py := confluentPython(t)
	b, _ := startBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	const topic = "py-txn"
	createTopic(t, newAdmin(t, b.Addr()), topic, 3, nil)

	// The script gives each step 60 s and reports what it saw when one
	// times out; this bound only catches a hung interpreter.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, py, "testdata/librdkafka_txn.py", b.Addr(), topic)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("librdkafka_txn.py: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	var readCommitted, readUncommitted []string
	for line := range strings.Lines(stdout.String()) {
		line = strings.TrimSuffix(line, "\n")
		if v, ok := strings.CutPrefix(line, "uncommitted: "); ok {
			readUncommitted = append(readUncommitted, v)
		} else {
			readCommitted = append(readCommitted, line)
		}
	}

	var committed, all []string
	for i := range 20 {
		committed = append(committed, fmt.Sprintf("committed-%d", i))
	}
	all = append(all, committed...)
	for i := range 10 {
		all = append(all, fmt.Sprintf("aborted-%d", i))
	}
	sameValues := func(who string, got, want []string) {
		t.Helper()
		got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s saw %d values %v, want %d values %v", who, len(got), got, len(want), want)
		}
	}
	sameValues("librdkafka read_committed", readCommitted, committed)
	sameValues("librdkafka read_uncommitted", readUncommitted, all)
	sameValues("franz-go read_committed", readAll(t, b.Addr(), topic, true), committed)
	sameValues("franz-go read_uncommitted", readAll(t, b.Addr(), topic, false), all)
}
