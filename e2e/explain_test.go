package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A new user's librdkafka producer.properties with acks=1 and a consumer
// with enable.auto.commit=true, on a topic of a running `weir serve`, is
// explained as no guarantee with both weak links named; the changes it
// suggests, applied, pass --verify: the lab measures no loss where the
// explanation promises none.
func TestExplainNewUsersConfigurationAndVerifyTheSuggestedChanges(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	if _, err := runWeir(t, "", "topic", "create", "orders", "--partitions", "3", "--brokers", p.addr); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	producer := filepath.Join(dir, "producer.properties")
	consumer := filepath.Join(dir, "consumer.properties")
	if err := os.WriteFile(producer, []byte("# orders service\nbootstrap.servers="+p.addr+"\nacks=1\nlinger.ms=5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(consumer, []byte("bootstrap.servers="+p.addr+"\ngroup.id=billing\nenable.auto.commit=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"explain", "--client", "librdkafka", "--producer", producer, "--consumer", consumer, "--topic", "orders", "--bootstrap", p.addr}
	out, err := runWeir(t, "", base...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"guarantee: none (records may be lost and may be duplicated)",
		"weakest links: producer (acks=1; enable.idempotence=false), consumer (enable.auto.commit=true)",
		"topic settings read from topic orders on " + p.addr,
		"topic     at-most-once  replication.factor=1",
		"producer, loss: acks=1",
		"consumer, loss: enable.auto.commit=true",
		"consumer, duplicates: enable.auto.commit=true",
		// librdkafka's auto-commit is the greedy worker's, not kgo's
		// default; acks=1 on one replica is shown by no lab row (one
		// broker keeps what it acknowledged at acks=1 as at acks=all).
		"weir lab --only 'consumer / greedy auto-commit / consumer killed mid-batch'",
		"to reach at-least-once:",
		"cost: throughput × 0.63",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if b := failureBlock(out, "producer, loss: acks=1"); !strings.Contains(b, "not shown by the lab") {
		t.Errorf("acks=1 on one replica: want it marked not shown by the lab:\n%s", b)
	}
	_, apply, ok := strings.Cut(out, "  apply: ")
	if !ok {
		t.Fatalf("no changes to apply:\n%s", out)
	}
	apply, _, _ = strings.Cut(apply, "\n")
	args := append(append(base, strings.Fields(apply)...), "--verify", "--verify-records", "200", "--seed", "11")
	out, err = runWeir(t, "", args...)
	if err != nil {
		t.Fatalf("verify of the suggested changes (%s): %v\n%s", apply, err, out)
	}
	for _, want := range []string{
		"guarantee: at-least-once",
		"producer / acks=all / broker killed",
		"consumer / process then commit / consumer killed mid-batch",
		"cluster / acks=all min.insync=2 unclean=off / followers lag then leader killed",
		"verify: all 6 measurements consistent with the prediction",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
}

// A broker that stores a retried batch twice (its duplicate check
// switched off) contradicts the exactly-once prediction for an idempotent
// producer: --verify notices and exits non-zero.
func TestExplainVerifyFailsWhenTheMeasurementContradictsThePrediction(t *testing.T) {
	out, err := runWeir(t, "", "explain", "--producer-set", "enable.idempotence=true",
		"--consumer-set", "enable.auto.commit=false", "--consumer-set", "weir.dedup=true",
		"--assume", "replication.factor=1", "--verify", "--verify-records", "300", "--seed", "5",
		"--unsafe-broker-faults", "producer.dedup=skip")
	ce, ok := err.(*cliError)
	if !ok || !strings.Contains(ce.stderr, "contradicts the prediction") {
		t.Fatalf("want a contradicted prediction, got %v\n%s", err, out)
	}
	if !strings.Contains(out, "producer / acks=all idempotent / lost acks") || !strings.Contains(out, "CONTRADICTED") {
		t.Fatalf("output does not show the contradiction:\n%s", out)
	}
}

// Bad flags and values are one line on stderr and a non-zero exit.
func TestExplainRejectsBadInputInOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"--client", "kafka-python"},
		{"--producer-set", "acks=2"},
		{"--producer-set", "acks"},
		{"--assume", "replication.factor=zero"},
		{"--consumer-set", "isolation.level=snapshot"},
		{"--producer", "/nonexistent/producer.properties"},
		{"--bootstrap", "127.0.0.1:1"},
		{"--client", "librdkafka", "--producer-set", "enable.idempotence=true", "--producer-set", "acks=1"},
	} {
		_, err := runWeir(t, "", append([]string{"explain"}, args...)...)
		ce, ok := err.(*cliError)
		if !ok || strings.Count(strings.TrimSpace(ce.stderr), "\n") != 0 || ce.stderr == "" {
			t.Errorf("weir explain %v: want one error line, got %v", args, err)
		}
	}
}

// failureBlock is the failure of `weir explain` output that starts with
// head ("producer, loss: acks=1"), up to the next failure or section.
func failureBlock(out, head string) string {
	_, rest, ok := strings.Cut(out, "  - "+head)
	if !ok {
		return ""
	}
	block := head
	for _, line := range strings.SplitAfter(rest, "\n")[1:] {
		if !strings.HasPrefix(line, "      ") {
			break
		}
		block += line
	}
	return block
}
