package atmostonce

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/internal/exampletest"
)

// A consumer that commits before processing and dies mid-batch loses the
// rest of that batch, and its successor processes nothing twice.
func TestCommitBeforeProcessingLosesButNeverDuplicates(t *testing.T) {
	addr := exampletest.Broker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	brokers := []string{addr}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "metrics"); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	const n = 100
	var values [][]byte
	for i := range n {
		values = append(values, []byte(strings.Repeat("x", i%7)+string(rune('a'+i%26))))
	}
	if err := Produce(ctx, brokers, "metrics", values); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	count := func(r *kgo.Record) { seen[r.Offset]++ }
	// The first consumer dies after 10 records of a batch it committed.
	first, err := Consume(ctx, brokers, "g", "metrics", count, 10, n)
	if err != nil || first != 10 {
		t.Fatalf("first consumer: %d processed, %v", first, err)
	}
	committed := committedOffset(t, ctx, addr, "g", "metrics")
	if committed <= 10 {
		t.Fatalf("committed offset %d: the batch was not committed ahead of processing", committed)
	}
	// More records arrive; the successor resumes at the committed offset.
	if err := Produce(ctx, brokers, "metrics", values[:5]); err != nil {
		t.Fatal(err)
	}
	end := highWatermark(t, ctx, addr, "metrics")
	if _, err := Consume(ctx, brokers, "g", "metrics", count, 0, int(end-committed)); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < end; off++ {
		switch k := seen[off]; {
		case k > 1:
			t.Fatalf("offset %d processed %d times", off, k)
		case off >= 10 && off < committed && k != 0:
			t.Fatalf("offset %d, committed before the crash and never processed, was processed by the successor", off)
		case (off < 10 || off >= committed) && k != 1:
			t.Fatalf("offset %d processed %d times, want once", off, k)
		}
	}
	t.Logf("lost %d records of the committed batch (offsets 10 to %d)", committed-10, committed-1)
}

func committedOffset(t *testing.T, ctx context.Context, addr, group, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offs.Lookup(topic, 0)
	if !ok {
		t.Fatal("no committed offset")
	}
	return o.At
}

func highWatermark(t *testing.T, ctx context.Context, addr, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ends.Lookup(topic, 0)
	return o.Offset
}
