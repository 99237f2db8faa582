package e2e

import (
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// throttleCounter counts the throttles a broker tells a client of.
type throttleCounter struct{ n atomic.Int64 }

func (h *throttleCounter) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {

	if d > 0 {
		h.n.Add(1)
	}
}

// A producer over its producer_byte_rate quota (KIP-13) is told to slow
// down (throttle_time_ms) and held to about its rate, while a second
// producer on the same broker, without a quota, keeps writing many times
// faster: one greedy client does not take the broker from the others.
func TestQuotaThrottlesAGreedyProducerWhileAnotherKeepsItsRate(t *testing.T) {
	b, _ := startBroker(t, nil)
	adm := newAdmin(t, b.Addr())
	ctx := testCtx(t)
	createTopic(t, adm, "quota", 2, nil)
	const limit = 100_000 // bytes per second
	greedy := "greedy"
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &greedy}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: limit}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("AlterClientQuotas: %v %s", r.Err, r.ErrMessage)
		}
	}
	described, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchName: &greedy, MatchType: 0}})
	if err != nil || len(described) != 1 || described[0].Values[0].Value != limit {
		t.Fatalf("DescribeClientQuotas: %+v %v", described, err)
	}

	// The quota counts bytes on the wire: no compression, so a record's
	// value is what it costs.
	value := make([]byte, 1000)
	rand.Read(value)
	run := func(clientID string, hooks *throttleCounter, bytes *atomic.Int64, stop <-chan struct{}, done chan<- struct{}) {
		defer close(done)
		// Small requests and a small buffer: the throttle follows the
		// requests closely, and the final flush is short.
		cl := newClient(t, b.Addr(), kgo.ClientID(clientID), kgo.DefaultProduceTopic("quota"), kgo.WithHooks(hooks),
			kgo.MaxBufferedRecords(200), kgo.ProducerBatchMaxBytes(16<<10), kgo.ProducerBatchCompression(kgo.NoCompression()))
		for {
			select {
			case <-stop:
				return // the records still buffered are dropped with the client
			default:
			}
			cl.Produce(ctx, &kgo.Record{Value: value}, func(r *kgo.Record, err error) {
				if err == nil {
					bytes.Add(int64(len(r.Value)))
				}
			})
		}
	}
	var greedyBytes, politeBytes atomic.Int64
	greedyHooks, politeHooks := &throttleCounter{}, &throttleCounter{}
	stop := make(chan struct{})
	gDone, pDone := make(chan struct{}), make(chan struct{})
	start := time.Now()
	go run("greedy", greedyHooks, &greedyBytes, stop, gDone)
	go run("polite", politeHooks, &politeBytes, stop, pDone)
	time.Sleep(5 * time.Second)
	elapsed := time.Since(start).Seconds()
	g, p := float64(greedyBytes.Load())/elapsed, float64(politeBytes.Load())/elapsed
	close(stop)
	<-gDone
	<-pDone
	t.Logf("greedy %.0f B/s (%d throttles), polite %.0f B/s (%d throttles)", g, greedyHooks.n.Load(), p, politeHooks.n.Load())
	if greedyHooks.n.Load() == 0 {
		t.Fatal("the producer over its quota was never told of a throttle")
	}
	if politeHooks.n.Load() != 0 {
		t.Fatalf("the producer without a quota was throttled %d times", politeHooks.n.Load())
	}
	// The rate is measured over the quota window (11 samples of 1 s, at
	// least 10 s), so a new client may write up to 10 s of its quota at
	// once before the first throttle; over 5 s that and its rate make at
	// most 3× its quota, with room for the requests already in its socket.
	if g > 5*limit {
		t.Fatalf("the greedy producer wrote %.0f B/s, over 5× its quota of %d", g, limit)
	}
	if p < 10*g {
		t.Fatalf("the producer without a quota wrote %.0f B/s, not 10× the greedy one's %.0f: the greedy one held it back", p, g)
	}
}
