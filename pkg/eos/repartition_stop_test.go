package eos

import (
	"context"
	"testing"
)

// A Topology stopped while it starts (its context ended before or while
// it creates and checks the repartition topic) returns nil, as its Run
// documents for the end of its context: a worker told to stop during
// start-up stops cleanly rather than reporting a failure.
func TestRepartitionedRunStoppedDuringStartReturnsNil(t *testing.T) {
	r := newRig(t, 3)
	topo := newTopology(t, r, Repartition{Name: "by-value", Key: byValue})
	ctx, cancel := context.WithCancel(r.ctx)
	cancel()
	if err := topo.Run(ctx); err != nil {
		t.Fatalf("Run with its context ended: %v, want nil", err)
	}
}

// A stateful processor stopped while it starts (checking its inputs and
// its changelog) returns nil too.
func TestStatefulRunStoppedDuringStartReturnsNil(t *testing.T) {
	r := newRig(t, 3)
	p, err := NewStateful(Config{Brokers: []string{r.addr}, TransactionalID: "early", Group: "early",
		InputTopics: []string{"in"}, OutputTopic: "out", Store: "counts", StateDir: t.TempDir()}, Count())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(r.ctx)
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run with its context ended: %v, want nil", err)
	}
}
