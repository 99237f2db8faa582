package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// librdkafkaStarts reports whether librdkafka (confluent_kafka) creates a
// producer from the properties file at path, and what it said.
func librdkafkaStarts(t *testing.T, path string) (bool, string) {
	t.Helper()
	const script = `
import sys, confluent_kafka as ck
conf = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line and not line.startswith('#'):
        k, v = line.split('=', 1)
        conf[k.strip()] = v.strip()
try:
    ck.Producer(conf)
    print('created')
except Exception as e:
    print('refused: %s' % e)
`
	var out, errOut bytes.Buffer
	cmd := exec.Command(confluentPython(t), "-c", script, path)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\n%s", err, &errOut)
	}
	return strings.TrimSpace(out.String()) == "created", strings.TrimSpace(out.String() + " " + errOut.String())
}

// Many deployments hand one client.properties to both the producer and
// the consumer. librdkafka creates a producer from a file that also holds
// consumer properties: it warns "Configuration property
// enable.auto.commit is a consumer property and will be ignored by this
// producer instance" and starts (the Java client likewise logs "supplied
// but isn't a known config" and starts). `weir explain --client
// librdkafka --producer client.properties --consumer client.properties`
// explains such a file as the clients start with it, each layer taking
// its own settings.
func TestExplainAcceptsASharedClientPropertiesFileAsLibrdkafkaDoes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "client.properties")
	shared := "bootstrap.servers=127.0.0.1:1\nacks=all\ngroup.id=billing\nenable.auto.commit=false\nisolation.level=read_committed\n"
	if err := os.WriteFile(path, []byte(shared), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, said := librdkafkaStarts(t, path); !ok {
		t.Fatalf("premise: librdkafka refuses the shared file as a producer's: %s", said)
	}
	out, err := runWeir(t, "", "explain", "--client", "librdkafka", "--producer", path, "--consumer", path,
		"--assume", "replication.factor=3,min.insync.replicas=2")
	if err != nil {
		t.Errorf("librdkafka starts a producer from this file; weir explain refuses it: %v", err)
		return
	}
	if !strings.Contains(out, "guarantee: at-least-once") {
		t.Errorf("want at-least-once (acks=all without idempotence, commit after processing):\n%s", out)
	}
}

// librdkafka refuses a property it does not know: "No such configuration
// property". A misspelt enable.idempotence=true in a librdkafka
// producer.properties therefore stops the producer from starting; weir
// explain --client librdkafka refuses the file too, rather than apply
// librdkafka's default enable.idempotence=false and explain a producer
// that cannot exist.
func TestExplainRefusesALibrdkafkaFileWithAPropertyLibrdkafkaRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "producer.properties")
	if err := os.WriteFile(path, []byte("bootstrap.servers=127.0.0.1:1\nacks=all\nenable.idempotance=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, said := librdkafkaStarts(t, path); ok {
		t.Fatalf("premise: librdkafka creates a producer with enable.idempotance: %s", said)
	}
	out, err := runWeir(t, "", "explain", "--client", "librdkafka", "--producer", path, "--assume", "replication.factor=3,min.insync.replicas=2")
	if err == nil {
		t.Errorf("librdkafka refuses enable.idempotance (no such property); weir explain explains the file:\n%s", out)
	}
}
