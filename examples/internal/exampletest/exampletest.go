// Package exampletest starts what the guarantee examples' tests share: a
// real, durable Weir broker and a topic of records that each carry an
// event id.
package exampletest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/weir"
)

// EventIDHeader names the header that carries each record's event id.
const EventIDHeader = "event-id"

// Broker starts an embedded Weir broker for t and returns its address.
func Broker(t *testing.T) string {
	t.Helper()
	b, err := weir.Start(context.Background(), weir.Config{DataDir: t.TempDir(), Settings: map[string]string{
		"group.initial.rebalance.delay.ms": "0",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addr()
}

// Fill creates topic with one partition and writes n records, event ids
// "e0" to "e<n-1>", with an idempotent acks=all producer.
func Fill(t *testing.T, addr, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("e%d", i)
		r := &kgo.Record{Value: []byte(id), Headers: []kgo.RecordHeader{{Key: EventIDHeader, Value: []byte(id)}}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}
