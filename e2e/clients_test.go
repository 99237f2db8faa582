package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

// runKcat runs kcat with stdin and returns its combined output.
func runKcat(t *testing.T, stdin string, args ...string) ([]byte, error) {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed; ./test.sh installs it (apt-get install kcat)")
	}
	cmd := exec.Command(kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd.CombinedOutput()
}

// kcat (librdkafka) negotiates versions with Weir, produces keyed records
// and consumes them back.
func TestKcatProducesAndConsumes(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed; ./test.sh installs it (apt-get install kcat)")
	}
	b, _ := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "kc", 2, nil)
	var in bytes.Buffer
	for i := range 100 {
		fmt.Fprintf(&in, "k%d:v%d\n", i%5, i)
	}
	prod := exec.Command(kcat, "-P", "-b", b.Addr(), "-t", "kc", "-K:", "-X", "acks=all")
	prod.Stdin = &in
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	cons := exec.Command(kcat, "-C", "-b", b.Addr(), "-t", "kc", "-o", "beginning", "-e", "-q", "-f", "%k=%s\n")
	out, err := cons.Output()
	if err != nil {
		t.Fatalf("kcat -C: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 100 {
		t.Fatalf("kcat consumed %d records, want 100", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	for i := range 100 {
		if want := fmt.Sprintf("k%d=v%d", i%5, i); !seen[want] {
			t.Fatalf("record %q missing", want)
		}
	}
	// The records produced with kcat are readable by franz-go too.
	if recs := consumeAll(t, b.Addr(), "kc", 100); len(recs) != 100 {
		t.Fatalf("franz-go read %d records", len(recs))
	}
}

// sarama negotiates, produces synchronously at acks=all, and consumes a
// partition from the oldest offset.
func TestSaramaProducesAndConsumes(t *testing.T) {
	b, _ := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "sa", 1, nil)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 50 {
		p, off, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "sa", Value: sarama.StringEncoder(fmt.Sprint(i))})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if p != 0 || off != int64(i) {
			t.Fatalf("send %d: partition %d offset %d", i, p, off)
		}
	}
	cons, err := sarama.NewConsumer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition("sa", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx := testCtx(t)
	for i := range 50 {
		select {
		case m := <-pc.Messages():
			if string(m.Value) != fmt.Sprint(i) || m.Offset != int64(i) {
				t.Fatalf("message %d: offset %d value %s", i, m.Offset, m.Value)
			}
		case err := <-pc.Errors():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatalf("consumed %d of 50", i)
		}
	}
}
