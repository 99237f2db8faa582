package e2e

import (
	"context"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

// kcatGroup runs librdkafka's balanced consumer (kcat -G) until it reaches
// the end of every partition it is assigned, and returns the values it
// printed, sorted. On exit it commits what it consumed.
func kcatGroup(t *testing.T, addr, group, topic string) []string {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed; ./test.sh installs it (apt-get install kcat)")
	}
	cmd := exec.CommandContext(testCtx(t), kcat, "-b", addr, "-G", group, topic, "-e", "-q", "-f", "%s\n",
		"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat -G: %v\n%s", err, out)
	}
	vals := strings.Fields(string(out))
	sort.Strings(vals)
	return vals
}

func wantValues(t *testing.T, who string, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("%s consumed %d records, want %d", who, len(got), to-from)
	}
	for i, v := range got {
		if v != value(from+i) {
			t.Fatalf("%s consumed %v, want %s … %s once each", who, got, value(from), value(to-1))
		}
	}
}

// librdkafka's balanced consumer joins a group, consumes a topic, commits,
// and a second run resumes after what the first committed.
func TestKcatBalancedConsumer(t *testing.T) {
	b, _ := startBroker(t, groupSettings)
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "kg", 3, nil)
	produceSpread(t, b.Addr(), "kg", 0, 60)
	wantValues(t, "first kcat -G", kcatGroup(t, b.Addr(), "kcat-group", "kg"), 0, 60)
	if !committedEqualsEnd(t, adm, "kcat-group", "kg") {
		t.Fatal("kcat's offsets were not committed")
	}
	produceSpread(t, b.Addr(), "kg", 60, 75)
	wantValues(t, "second kcat -G", kcatGroup(t, b.Addr(), "kcat-group", "kg"), 60, 75)
}

// saramaHandler marks every message it is given and stops the session
// once it has seen want of them.
type saramaHandler struct {
	want   int
	got    chan string
	cancel context.CancelFunc
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		s.MarkMessage(m, "")
		h.got <- string(m.Value)
		if len(h.got) == h.want {
			h.cancel()
		}
	}
	return nil
}

// saramaGroup consumes want records with a sarama consumer group, which
// commits the marked offsets when it closes.
func saramaGroup(t *testing.T, addr, group, topic string, want int) []string {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	h := &saramaHandler{want: want, got: make(chan string, want+1000), cancel: cancel}
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
			t.Fatalf("sarama consume: %v", err)
		}
	}
	if err := cg.Close(); err != nil {
		t.Fatalf("sarama close: %v", err)
	}
	close(h.got)
	var vals []string
	for v := range h.got {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	return vals
}

// sarama's consumer group joins, consumes a topic, commits, and a second
// run resumes after what the first committed.
func TestSaramaConsumerGroup(t *testing.T) {
	b, _ := startBroker(t, groupSettings)
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "sg", 3, nil)
	produceSpread(t, b.Addr(), "sg", 0, 60)
	wantValues(t, "first sarama group", saramaGroup(t, b.Addr(), "sarama-group", "sg", 60), 0, 60)
	eventually(t, "sarama committed", func() bool { return committedEqualsEnd(t, adm, "sarama-group", "sg") })
	produceSpread(t, b.Addr(), "sg", 60, 75)
	wantValues(t, "second sarama group", saramaGroup(t, b.Addr(), "sarama-group", "sg", 15), 60, 75)
}
