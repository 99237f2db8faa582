package eos

import (
	"context"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/weir"
)

// rig is what the stateful tests share: an embedded broker, the input
// and output topics, and a client.
type rig struct {
	t    *testing.T
	ctx  context.Context
	addr string
	cl   *kgo.Client
	adm  *kadm.Client
}

func newRig(t *testing.T, partitions int32) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	b, err := weir.Start(ctx, weir.Config{DataDir: t.TempDir(), Settings: map[string]string{"group.initial.rebalance.delay.ms": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	r := &rig{t: t, ctx: ctx, addr: b.Addr(), cl: cl, adm: kadm.NewClient(cl)}
	for _, topic := range []string{"in", "out"} {
		if _, err := r.adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// produce writes one record per key, in order, and returns how many of
// each it wrote.
func (r *rig) produce(keys ...string) map[string]int64 {
	r.t.Helper()
	n := map[string]int64{}
	rs := make([]*kgo.Record, len(keys))
	for i, k := range keys {
		rs[i] = &kgo.Record{Key: []byte(k), Value: []byte(strconv.Itoa(i))}
		n[k]++
	}
	if err := r.cl.ProduceSync(r.ctx, rs...).FirstErr(); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// committedInput sums the group's committed offsets over the input.
func (r *rig) committedInput(group string) int64 {
	r.t.Helper()
	offs, err := r.adm.FetchOffsets(r.ctx, group)
	if err != nil {
		r.t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == "in" && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// readLog reads a topic to its end with the isolation level given and
// returns the last value per key, plus how many data records it read.
func (r *rig) readLog(topic string, iso kgo.IsolationLevel) (map[string]string, int) {
	r.t.Helper()
	ends, err := r.adm.ListEndOffsets(r.ctx, topic)
	if err != nil {
		r.t.Fatal(err)
	}
	parts := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			parts[o.Partition] = kgo.NewOffset().AtStart()
			remaining[o.Partition] = o.Offset
		}
	})
	last := map[string]string{}
	if len(parts) == 0 {
		return last, 0
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.addr), kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		r.t.Fatal(err)
	}
	defer cl.Close()
	n := 0
	for len(remaining) > 0 {
		fs := cl.PollFetches(r.ctx)
		if err := fs.Err(); err != nil {
			r.t.Fatalf("reading %s: %v", topic, err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset+1 >= remaining[rec.Partition] {
				delete(remaining, rec.Partition)
			}
			if rec.Attrs.IsControl() {
				return
			}
			n++
			if rec.Value == nil {
				delete(last, string(rec.Key))
			} else {
				last[string(rec.Key)] = string(rec.Value)
			}
		})
	}
	return last, n
}

// runUntil runs p until cond holds, then stops it cleanly.
func (r *rig) runUntil(p *Processor, what string, cond func() bool) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for !cond() {
		select {
		case err := <-done:
			r.t.Fatalf("processor stopped before %s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
		if r.ctx.Err() != nil {
			cancel()
			r.t.Fatalf("no %s before the deadline", what)
		}
	}
	cancel()
	if err := <-done; err != nil {
		r.t.Fatalf("Run: %v", err)
	}
	p.Close()
}

func restoredRecords(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "weir_eos_restore_records_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func commitsTimed(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "weir_eos_commit_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// gauge sums a gauge's series.
func gauge(t *testing.T, reg *prometheus.Registry, name string) (sum float64, found bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum, found = sum+m.GetGauge().GetValue(), true
			}
		}
	}
	return sum, found
}

func query(t *testing.T, p *Processor, store, key string) (string, int) {
	t.Helper()
	rec := httptest.NewRecorder()
	p.QueryHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/stores/"+store+"/"+key, nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b), rec.Code
}

func wantCounts(t *testing.T, p *Processor, want map[string]int64) {
	t.Helper()
	for k, n := range want {
		if got, code := query(t, p, "counts", k); code != 200 || got != strconv.FormatInt(n, 10) {
			t.Errorf("store count of %s: %q (HTTP %d), want %d", k, got, code, n)
		}
	}
}

// syncBuffer collects a child process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
