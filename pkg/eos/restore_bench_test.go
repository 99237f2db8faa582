package eos

import (
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/weir"
)

var restoreKeys = flag.Int("eos.restorekeys", 1_000_000, "keys in the store BenchmarkRestore restores")

// BenchmarkRestore measures bringing one partition's store up to its
// changelog of -eos.restorekeys distinct keys (written in transactions of
// 100,000): after a crash (no checkpoint: the whole changelog is read)
// and after a clean stop (a checkpoint: nothing is read).
func BenchmarkRestore(b *testing.B) {
	ctx := context.Background()
	br, err := weir.Start(ctx, weir.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	const group, store = "bench", "s"
	topic := ChangelogTopic(group, store)
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.TransactionalID("bench-loader"),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, t := range []string{"in", topic} {
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, t); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	perm := rand.New(rand.NewPCG(1, 2)).Perm(*restoreKeys)
	value := []byte("1")
	for i, k := range perm {
		if i%100_000 == 0 {
			if i > 0 {
				if err := cl.Flush(ctx); err != nil {
					panic(err)
				}
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					b.Fatal(err)
				}
			}
			if err := cl.BeginTransaction(); err != nil {
				b.Fatal(err)
			}
		}
		cl.Produce(ctx, &kgo.Record{Key: []byte("item-" + strconv.Itoa(k)), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		panic(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %d changelog records in %v", *restoreKeys, time.Since(start))

	p, err := NewStateful(Config{Brokers: []string{br.Addr()}, TransactionalID: "bench", Group: group,
		InputTopics: []string{"in"}, Store: store, StateDir: b.TempDir()}, Count())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	restore := func(b *testing.B, dir string) (restored int64) {
		t, err := openTask(dir, store, 0)
		if err != nil {
			b.Fatal(err)
		}
		from := t.applied
		if err := p.restoreTask(ctx, t); err != nil {
			b.Fatal(err)
		}
		if err := t.close(true); err != nil {
			b.Fatal(err)
		}
		return t.applied - from
	}
	b.Run("after-crash", func(b *testing.B) {
		for b.Loop() {
			dir := b.TempDir()
			if read := restore(b, dir); read < int64(*restoreKeys) {
				b.Fatalf("read %d changelog offsets, want at least %d", read, *restoreKeys)
			}
			os.RemoveAll(dir)
		}
		b.ReportMetric(float64(*restoreKeys)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	b.Run("after-clean-stop", func(b *testing.B) {
		dir := b.TempDir()
		restore(b, dir) // the state a clean stop leaves: store and checkpoint
		b.ResetTimer()
		for b.Loop() {
			if read := restore(b, dir); read != 0 {
				b.Fatalf("read %d changelog offsets after a clean stop, want none", read)
			}
		}
	})
}
