package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// For a topic read from a running cluster with replication factor 1,
// every setting explain tells the user to "set ... on the topic" must be
// one `weir topic alter` accepts. replication.factor is not a topic
// config in Kafka: a topic's replicas change by partition reassignment
// (KIP-455; `weir topic reassign`), and Weir, as Kafka, answers an alter
// of it with INVALID_CONFIG ("unknown topic config replication.factor"),
// so explain suggests a reassignment for it instead.
func TestExplainSuggestsOnlyTopicConfigsTheClusterAccepts(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	if _, err := runWeir(t, "", "topic", "create", "orders", "--partitions", "1", "--brokers", p.addr); err != nil {
		t.Fatal(err)
	}
	out, err := runWeir(t, "", "explain", "--consumer-set", "enable.auto.commit=false", "--topic", "orders", "--bootstrap", p.addr)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m := regexp.MustCompile(`topic: set (.+) on the topic`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("premise: no topic change suggested:\n%s", out)
	}
	for _, kv := range strings.Split(m[1], ", ") {
		if _, err := runWeir(t, "", "topic", "alter", "orders", "--config", kv, "--brokers", p.addr); err != nil {
			ce, _ := err.(*cliError)
			stderr := ""
			if ce != nil {
				stderr = strings.TrimSpace(ce.stderr)
			}
			t.Errorf("explain says to set %s on the topic; the cluster refuses it: %s", kv, stderr)
		}
	}
}
