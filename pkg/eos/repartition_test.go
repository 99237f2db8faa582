package eos

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newTopology(t *testing.T, r *rig, rp Repartition) *Topology {
	t.Helper()
	cfg := Config{Brokers: []string{r.addr}, TransactionalID: "agg-0", Group: "agg",
		InputTopics: []string{"in"}, OutputTopic: "out", Store: "sums", StateDir: t.TempDir()}
	topo, err := NewRepartitioned(cfg, rp, Count())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	return topo
}

func byValue(in *kgo.Record) ([]byte, error) { return in.Value, nil }

// The processor creates its repartition topic as Kafka Streams does:
// "<application id>-<name>-repartition", the inputs' partition count
// unless configured, cleanup.policy=delete; and re-keyed records reach it.
func TestRepartitionTopicIsCreatedWithTheInputsPartitionsAndDeletePolicy(t *testing.T) {
	for _, tc := range []struct {
		configured, want int32
	}{{0, 3}, {5, 5}} {
		r := newRig(t, 3)
		topo := newTopology(t, r, Repartition{Name: "by-value", Key: byValue, Partitions: tc.configured})
		r.produce("a", "b", "c")
		topic := RepartitionTopic("agg", "by-value")
		if topic != "agg-by-value-repartition" {
			t.Fatalf("repartition topic %q", topic)
		}
		ctx, cancel := context.WithCancel(r.ctx)
		done := make(chan error, 1)
		go func() { done <- topo.Run(ctx) }()
		// A client that asked about the topic before it existed may keep
		// its answer cached: read with one made after.
		if _, err := awaitTopic(r.ctx, r.adm, topic); err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(r.addr))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		fresh := &rig{t: t, ctx: r.ctx, addr: r.addr, cl: cl, adm: kadm.NewClient(cl)}
		for {
			_, n := fresh.readLog(topic, kgo.ReadCommitted()) // no purge before PurgeInterval (30s)
			if n == 3 {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("Run stopped: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			if r.ctx.Err() != nil {
				t.Fatal("the re-keyed records did not reach the repartition topic")
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		details, err := r.adm.ListTopics(r.ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if n := int32(len(details[topic].Partitions)); n != tc.want {
			t.Errorf("configured %d: %d partitions, want %d", tc.configured, n, tc.want)
		}
		policy, err := cleanupPolicy(r.ctx, r.adm, topic)
		if err != nil || policy != "delete" {
			t.Errorf("cleanup.policy %q (%v), want delete", policy, err)
		}
	}
}

// A repartition topic that exists with settings that would lose or
// misroute records is refused at start with an error naming the setting.
func TestRepartitionTopicWithWrongSettingsIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name       string
		partitions int32
		configs    map[string]*string
		want       string
	}{
		{"compacted", 3, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, "cleanup.policy=compact"},
		{"compact,delete", 3, map[string]*string{"cleanup.policy": kadm.StringPtr("compact,delete")}, "cleanup.policy=compact,delete"},
		{"other partition count", 2, nil, "has 2 partitions, want 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 3)
			topic := RepartitionTopic("agg", "by-value")
			if _, err := r.adm.CreateTopic(r.ctx, tc.partitions, 1, tc.configs, topic); err != nil {
				t.Fatal(err)
			}
			err := newTopology(t, r, Repartition{Name: "by-value", Key: byValue}).Run(r.ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
