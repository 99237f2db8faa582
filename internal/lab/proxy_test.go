package lab

import (
	"context"
	"math/rand"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/pkg/weir"
)

// proxiedBroker starts a broker that advertises a proxy in front of it.
func proxiedBroker(t *testing.T, tally *errorTally, settings map[string]string) *proxy {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProxy(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), tally)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	settings["advertised.listeners"] = "PLAINTEXT://" + p.addr()
	b, err := weir.Start(context.Background(), weir.Config{DataDir: t.TempDir(), Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p.setTarget(b.Addr())
	for _, topic := range []string{"cut", "big"} {
		if err := createTopic(context.Background(), brokers{addrs: []string{p.addr()}}, topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// fetchAs sends one Fetch of topic's partition 0 through the proxy as
// client id.
func fetchAs(ctx context.Context, t *testing.T, addr, id, topic string) error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID(id), kgo.RequestRetries(0), kgo.DialTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MaxBytes = -1, 10, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes = 0, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = cl.SeedBrokers()[0].Request(rctx, req)
	return err
}

// The proxy refuses the fetches of the client ids it is told to cut and
// of no one else, until healed.
func TestProxyCutsOnlyTheNamedClientsFetches(t *testing.T) {
	p := proxiedBroker(t, nil, map[string]string{})
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.DefaultProduceTopic("cut"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.cutFetches(replicaClientID(2))
	if err := fetchAs(ctx, t, p.addr(), replicaClientID(2), "cut"); err == nil {
		t.Fatal("a cut replica's fetch went through")
	}
	if err := fetchAs(ctx, t, p.addr(), replicaClientID(3), "cut"); err != nil {
		t.Fatalf("another replica's fetch failed: %v", err)
	}
	if err := fetchAs(ctx, t, p.addr(), "a-consumer", "cut"); err != nil {
		t.Fatalf("a consumer's fetch failed: %v", err)
	}
	p.cutFetches()
	if err := fetchAs(ctx, t, p.addr(), replicaClientID(2), "cut"); err != nil {
		t.Fatalf("after healing, the replica's fetch failed: %v", err)
	}
}

// The proxy counts the error codes the broker answers the watched
// producer with, and only that producer's.
func TestProxyCountsTheBrokersProduceErrors(t *testing.T) {
	tally := newErrorTally("watched")
	p := proxiedBroker(t, tally, map[string]string{"message.max.bytes": "2000"})
	ctx := context.Background()
	// Incompressible, so the batch stays larger than the limit.
	big := make([]byte, 5000)
	rand.New(rand.NewSource(1)).Read(big)
	for _, id := range []string{"watched", "other"} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.ClientID(id), kgo.DefaultProduceTopic("big"))
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: big}).FirstErr(); err == nil {
			t.Fatalf("a %d-byte record was accepted with message.max.bytes=2000", len(big))
		}
		cl.Close()
	}
	got := tally.snapshot()
	if len(got) != 1 || got["MESSAGE_TOO_LARGE"] != 1 {
		t.Fatalf("tally %v; want MESSAGE_TOO_LARGE ×1 (the watched producer's one refusal)", got)
	}
}
