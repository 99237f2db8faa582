package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

// TestReplayServesWhatWeirServes checks the instrument behind
// BenchmarkReplayConsume: a kgo consumer reads the same records, in the same
// order per partition, from the replay server as from the Weir broker it
// captured, with Fetch v12 (topics by name) and with the newest Fetch
// (topics by id), in both of the server's modes.
func TestReplayServesWhatWeirServes(t *testing.T) {
	ctx := context.Background()
	const records = 30_000
	addrs := startWeir(t)
	if _, err := Produce(ctx, addrs, ProduceOptions{Topic: benchTopic, Records: records}); err != nil {
		t.Fatal(err)
	}
	parts, err := captureTopic(ctx, addrs, benchTopic)
	if err != nil {
		t.Fatal(err)
	}
	want := consumeAll(t, addrs, records)
	for _, copying := range []bool{false, true} {
		srv, err := startReplay(benchTopic, parts, copying)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		for _, versions := range []struct {
			name string
			opt  kgo.Opt
		}{
			{"fetch v12", kgo.MaxVersions(kversion.V2_8_0())},
			{"newest fetch", kgo.MaxVersions(kversion.Stable())},
		} {
			t.Run(fmt.Sprintf("%s copying=%v", versions.name, copying), func(t *testing.T) {
				got := consumeAll(t, []string{srv.Addr()}, records, versions.opt)
				for p := range want {
					if !slices.Equal(got[p], want[p]) {
						t.Errorf("partition %d: replay served %d records, Weir %d, or they differ", p, len(got[p]), len(want[p]))
					}
				}
			})
		}
	}
}

// consumeAll reads n records from the start of the bench topic and returns
// them per partition as "offset:value".
func consumeAll(t *testing.T, brokers []string, n int, opts ...kgo.Opt) map[int32][]string {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(benchTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[int32][]string{}
	for got := 0; got < n; {
		fetches := cl.PollFetches(context.Background())
		if err := fetchError(fetches); err != nil {
			t.Fatal(err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], fmt.Sprintf("%d:%x", r.Offset, r.Value))
			got++
		})
	}
	return out
}
