package eos

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/weir"
)

func TestNewRejectsIncompleteConfigs(t *testing.T) {
	for _, cfg := range []Config{
		{Group: "g", InputTopics: []string{"in"}},
		{TransactionalID: "x", InputTopics: []string{"in"}},
		{TransactionalID: "x", Group: "g"},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// A transform error aborts the transaction: none of its outputs becomes
// visible to read_committed consumers and its inputs' offsets are not
// committed, while earlier transactions stay committed.
func TestTransformErrorAbortsTheTransaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := weir.Start(ctx, weir.Config{DataDir: t.TempDir(), Settings: map[string]string{"group.initial.rebalance.delay.ms": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"in", "out"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	p, err := New(Config{Brokers: []string{b.Addr()}, TransactionalID: "t1", Group: "g",
		InputTopics: []string{"in"}, OutputTopic: "out", MaxPerTxn: 5},
		func(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
			if string(in.Value) == "7" {
				return nil, boom
			}
			return []*kgo.Record{{Value: in.Value}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Run(ctx); !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want the transform error", err)
	}
	// The abort is answered once decided; its marker follows a moment
	// later. A transaction left open would hold the last stable offset
	// back until its timeout, far longer than this wait.
	for deadline := time.Now().Add(10 * time.Second); ; {
		lso, err := adm.ListCommittedOffsets(ctx, "out")
		if err != nil {
			t.Fatal(err)
		}
		hw, err := adm.ListEndOffsets(ctx, "out")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := lso.Lookup("out", 0)
		h, _ := hw.Lookup("out", 0)
		if o.Offset == h.Offset {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last stable offset %d below the high watermark %d for 10s: a transaction is left open", o.Offset, h.Offset)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Polls may split the inputs anywhere: the committed input offset says
	// where the last committed transaction ended. The outputs visible to
	// read_committed must be exactly the inputs before it; a plain record
	// appended now marks where to stop reading.
	committed, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	at, _ := committed.Lookup("in", 0)
	if at.At < 0 || at.At > 7 {
		t.Fatalf("committed input offset %d: the failed input's transaction committed", at.At)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "out", Value: []byte("end")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for done := false; !done; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %v", got)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "end" {
				done = true
			} else if !done {
				got = append(got, string(r.Value))
			}
		})
	}
	if int64(len(got)) != at.At {
		t.Fatalf("committed outputs %v for a committed input offset %d", got, at.At)
	}
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("committed outputs %v, want 0..%d in order", got, at.At-1)
		}
	}
}
