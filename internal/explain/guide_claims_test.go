package explain

import (
	"os"
	"strings"
	"testing"
)

// guideRow returns the first line of docs/guarantees.md that starts with
// prefix.
func guideRow(t *testing.T, prefix string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/guarantees.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("docs/guarantees.md has no line starting %q", prefix)
	return ""
}

// Kafka's upgrade notes (3.0): "In 3.0.0 and 3.1.0, a bug prevented the
// idempotence default from being applied which meant that it remained
// disabled unless the user had explicitly set enable.idempotence to
// true ... fixed ... in 3.0.1, 3.1.1, and 3.2.0" (KAFKA-13598): a 3.0.0
// or 3.1.0 producer left at its defaults retries without idempotence and
// duplicates. The guide's Java row, and explain's Java defaults ("3.0 or
// later") where they are idempotent, must say so.
func TestGuideAndJavaDefaultsSayKafka300And310AreNotIdempotentByDefault(t *testing.T) {
	row := guideRow(t, "| Java ≥ 3.0 |")
	if !strings.Contains(row, "KAFKA-13598") && !strings.Contains(row, "3.1.0") {
		t.Errorf("the guide gives every Java client from 3.0 idempotence by default; Kafka 3.0.0 and 3.1.0 do not apply it (KAFKA-13598):\n%s", row)
	}
	r, err := Resolve(Input{Client: Java})
	if err != nil {
		t.Fatal(err)
	}
	if r.Idempotent {
		for _, n := range r.Notes {
			if strings.Contains(n, "KAFKA-13598") || strings.Contains(n, "3.1.0") {
				return
			}
		}
		t.Errorf("explain's Java defaults (documented as 3.0 or later) are idempotent with no word that 3.0.0 and 3.1.0 are not")
	}
}

// franz-go's default auto-commit commits what earlier polls returned, not
// what the latest poll handed over (kgo DisableAutoCommit/GreedyAutoCommit
// docs; consumer_group.go: the "one-poll lag ... is what makes default
// autocommit at-least-once"); see the e2e measurement
// TestFranzGoDefaultAutoCommitIsNotSaidToLoseRecordsAsTheLabMeasures.
// librdkafka's auto-commit does lose records (measured in
// TestVerifyJudgesLibrdkafkaAutoCommitByAWorkerThatLosesAsLibrdkafkaDoes),
// so the guide gives each behaviour its own row, and the row of
// franz-go's default auto-commit, "| auto-commit (franz-go, default)",
// must not say loss; nor may any auto-commit row naming franz-go say
// "loss and duplicates" without naming GreedyAutoCommit.
func TestGuideDoesNotSayFranzGoDefaultAutoCommitLosesRecords(t *testing.T) {
	row := guideRow(t, "| auto-commit (franz-go, default)")
	if strings.Contains(row, "loss") {
		t.Errorf("the guide says franz-go's auto-commit loses records:\n%s", row)
	}
	for _, line := range strings.Split(guideText(t), "\n") {
		if strings.HasPrefix(line, "| auto-commit") && strings.Contains(line, "franz-go") && strings.Contains(line, "loss and duplicates") && !strings.Contains(line, "GreedyAutoCommit") {
			t.Errorf("the guide says franz-go's auto-commit loses records:\n%s", line)
		}
	}
}

func guideText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/guarantees.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
