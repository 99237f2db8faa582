package e2e

import (
	"slices"
	"strings"
	"testing"
)

// A new user's first command after `weir serve`: producing to a topic
// that does not exist creates it, because the CLI's producer asks for
// auto-creation and the broker's auto.create.topics.enable is on by
// default.
func TestCLIProduceToAMissingTopicCreatesIt(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	brokers := "--brokers=" + p.addr
	if _, err := runWeir(t, "hi\n", "produce", "newtopic", brokers); err != nil {
		t.Fatalf("produce to a missing topic: %v", err)
	}
	out, err := runWeir(t, "", "topic", "list", brokers)
	if err != nil || !slices.Contains(strings.Fields(out), "newtopic") {
		t.Fatalf("topic list after the produce: %q %v", out, err)
	}
	out, err = runWeir(t, "", "consume", "newtopic", "--from", "start", "-n", "1", brokers)
	if err != nil || out != "hi\n" {
		t.Fatalf("consumed %q %v, want the record produced", out, err)
	}
}

// With auto.create.topics.enable=false the broker decides against
// creating the topic, and the CLI says so in one line naming the setting;
// no topic is created.
func TestCLIProduceToAMissingTopicFailsNamingAutoCreateWhenTheBrokerHasItOff(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir(), "--set", "auto.create.topics.enable=false")
	brokers := "--brokers=" + p.addr
	_, err := runWeir(t, "hi\n", "produce", "newtopic", brokers)
	ce, ok := err.(*cliError)
	if !ok {
		t.Fatalf("produce to a missing topic with auto-creation off: %v, want a failed command", err)
	}
	if !strings.Contains(ce.stderr, "auto.create.topics.enable=false") || !strings.Contains(ce.stderr, "weir topic create newtopic") {
		t.Fatalf("error does not name the setting and the way out: %q", ce.stderr)
	}
	out, err := runWeir(t, "", "topic", "list", brokers)
	if err != nil || slices.Contains(strings.Fields(out), "newtopic") {
		t.Fatalf("topic list after the refused produce: %q %v", out, err)
	}
}
