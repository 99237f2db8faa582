package bench

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// startKfake runs franz-go's in-memory fake cluster with one broker and the
// bench topic seeded with the default six partitions.
func startKfake(b *testing.B) []string {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(DefaultPartitions, benchTopic))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c.ListenAddrs()
}

func BenchmarkKfakeProduce(b *testing.B) { runProduceBench(b, startKfake(b)) }

func BenchmarkKfakeConsume(b *testing.B) { runConsumeBench(b, startKfake(b)) }
