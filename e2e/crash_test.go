package e2e

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A broker killed with SIGKILL while an acks=all producer runs restarts
// on the same directory with every acknowledged record present, in the
// order it was produced, at dense offsets. Unacknowledged records may be
// present or not; retries without idempotence may duplicate them.
func TestAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "127.0.0.1:0", dir)
	addr := p.addr
	createTopic(t, newAdmin(t, addr), "t", 1, nil)

	var mu sync.Mutex
	acked := map[int]bool{}
	next := 0
	const rounds, perRound = 3, 3000
	for round := range rounds {
		ctx, cancel := context.WithCancel(context.Background())
		cl := newClient(t, addr, kgo.DefaultProduceTopic("t"), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5), kgo.ProducerLinger(0))
		target := (round + 1) * perRound
		reached := make(chan struct{})
		var once sync.Once
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for ctx.Err() == nil {
				v := next
				next++
				cl.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(v))}, func(_ *kgo.Record, err error) {
					if err != nil {
						return
					}
					mu.Lock()
					acked[v] = true
					n := len(acked)
					mu.Unlock()
					if n >= target {
						once.Do(func() { close(reached) })
					}
				})
			}
		}()
		<-reached
		p.kill() // mid-stream: requests are in flight
		cancel()
		<-stopped
		cl.Close()
		p = startProc(t, addr, dir)
	}

	mu.Lock()
	defer mu.Unlock()
	hw := endOffset(t, addr, "t")
	recs := consumeAll(t, addr, "t", int(hw))
	present := map[int]bool{}
	highest := -1
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Fatalf("offset %d at position %d: offsets are not dense", r.Offset, i)
		}
		v, err := strconv.Atoi(string(r.Value))
		if err != nil {
			t.Fatalf("offset %d holds %q", r.Offset, r.Value)
		}
		if !present[v] && v < highest {
			t.Fatalf("value %d first appears after %d: reordered", v, highest)
		}
		present[v] = true
		highest = max(highest, v)
	}
	lost := 0
	for v := range acked {
		if !present[v] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost across %d SIGKILLs", lost, len(acked), rounds)
	}
	t.Logf("%d acknowledged, %d stored at %d offsets after %d SIGKILLs", len(acked), len(present), len(recs), rounds)
}
