package explain

import (
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoAccepts reports whether kgo.NewClient starts with opts: the
// franz-go version in go.mod is the judge of what franz-go refuses.
// NewClient does not dial, so an unused seed address is enough.
func kgoAccepts(t *testing.T, opts ...kgo.Opt) error {
	t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers("127.0.0.1:1"))...)
	if cl != nil {
		cl.Close()
	}
	return err
}

// kgo documents RecordRetries as "only enforced if it is safe to do so"
// when idempotency is on, and its config validation has no check on it:
// kgo.NewClient(kgo.RecordRetries(0)) starts, idempotent. explain must
// explain that configuration, idempotent, rather than refuse it.
func TestExplainAcceptsFranzGoRecordRetriesZeroAndKeepsItIdempotentAsFranzGoDoes(t *testing.T) {
	if err := kgoAccepts(t, kgo.RecordRetries(0)); err != nil {
		t.Fatalf("premise: franz-go refuses RecordRetries(0): %v", err)
	}
	ex, err := Explain(Input{Client: FranzGo, Producer: props("RecordRetries=0"), Consumer: props("DisableAutoCommit=true weir.dedup=true"), Topic: props(safeTopic)})
	if err != nil {
		t.Fatalf("franz-go starts with RecordRetries(0) and idempotent writes, yet explain refuses it: %v", err)
	}
	if !ex.Config.Idempotent {
		t.Errorf("franz-go keeps idempotent writes with RecordRetries(0); explain resolved enable.idempotence=false")
	}
}

// kgo's config validation, with idempotency on (its default), refuses any
// MaxProduceRequestsInflightPerBroker other than 1 ("invalid usage of
// MaxProduceRequestsInflightPerBroker with idempotency enabled"). explain
// refuses them too, rather than explain a client that never starts.
func TestExplainRefusesMoreThanOneFranzGoRequestInFlightWhenIdempotentAsFranzGoDoes(t *testing.T) {
	for _, n := range []int{2, 5} {
		kerr := kgoAccepts(t, kgo.MaxProduceRequestsInflightPerBroker(n))
		if kerr == nil {
			t.Fatalf("premise: franz-go starts with MaxProduceRequestsInflightPerBroker(%d) and idempotent writes", n)
		}
		_, err := Explain(Input{Client: FranzGo, Producer: map[string]string{"MaxProduceRequestsInflightPerBroker": strconv.Itoa(n)}, Topic: props(safeTopic)})
		if err == nil {
			t.Errorf("MaxProduceRequestsInflightPerBroker=%d: franz-go refuses to start (%v), explain explains it", n, kerr)
		}
	}
}

// Both clients refuse a delivery timeout they cannot honour: kgo
// validates RecordDeliveryTimeout >= 1s ("record timeout 500ms is less
// than allowed 1s"); the Java producer throws a ConfigException when an
// explicitly set delivery.timeout.ms is below linger.ms +
// request.timeout.ms (KIP-91; the message "delivery.timeout.ms should be
// equal to or larger than linger.ms + request.timeout.ms", KAFKA-7705;
// request.timeout.ms defaults to 30000). explain refuses both, as the
// clients do.
func TestExplainRefusesDeliveryTimeoutsTheClientsRefuseToStartWith(t *testing.T) {
	if err := kgoAccepts(t, kgo.RecordDeliveryTimeout(500*time.Millisecond)); err == nil {
		t.Fatal("premise: franz-go starts with RecordDeliveryTimeout(500ms)")
	}
	for _, tc := range []struct {
		client   Client
		producer string
	}{
		{FranzGo, "RecordDeliveryTimeout=500ms"},
		{Java, "delivery.timeout.ms=1000"},
	} {
		if _, err := Explain(Input{Client: tc.client, Producer: props(tc.producer), Topic: props(safeTopic)}); err == nil {
			t.Errorf("%v %s: the client refuses to start, explain explains it", tc.client, tc.producer)
		}
	}
}

// A non-idempotent producer may send more than five requests at once:
// the Java client (3.2+, KAFKA-13673) turns its default idempotence off
// for max.in.flight.requests.per.connection=10, librdkafka is not
// idempotent by default, and franz-go runs DisableIdempotentWrite with
// MaxProduceRequestsInflightPerBroker(10). Each is a working client, and
// `weir explain` says what it guarantees: the search for the next
// guarantee must not add enable.idempotence=true alone, which conflicts
// with the in-flight setting and would fail the whole explanation.
func TestExplainExplainsProducersWithMoreThanFiveRequestsInFlight(t *testing.T) {
	if err := kgoAccepts(t, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(10)); err != nil {
		t.Fatalf("premise: franz-go refuses DisableIdempotentWrite with 10 in flight: %v", err)
	}
	for _, tc := range []struct {
		client             Client
		producer, consumer string
	}{
		{Java, "max.in.flight.requests.per.connection=10", "enable.auto.commit=false"},
		{Librdkafka, "max.in.flight=10", "enable.auto.commit=false"},
		{FranzGo, "DisableIdempotentWrite=true MaxProduceRequestsInflightPerBroker=10", "DisableAutoCommit=true"},
	} {
		res, err := Resolve(Input{Client: tc.client, Producer: props(tc.producer), Consumer: props(tc.consumer), Topic: props(safeTopic)})
		if err != nil {
			t.Fatalf("premise: %v %s resolves: %v", tc.client, tc.producer, err)
		}
		ex, err := Explain(Input{Client: tc.client, Producer: props(tc.producer), Consumer: props(tc.consumer), Topic: props(safeTopic)})
		if err != nil {
			t.Errorf("%v %s (idempotent=%v, a configuration the client runs): explain fails: %v", tc.client, tc.producer, res.Idempotent, err)
			continue
		}
		if ex.Guarantee != AtLeastOnce {
			t.Errorf("%v %s: %s, want at-least-once (retries without idempotence duplicate; commit after processing redelivers)", tc.client, tc.producer, ex.Guarantee)
		}
	}
}

// kgo.NewClient refuses an empty transactional id ("invalid empty
// TransactionalID"). explain refuses it too, rather than read it as no
// transactions at all and explain a producer franz-go does not start.
func TestExplainRefusesAnEmptyFranzGoTransactionalIDAsFranzGoDoes(t *testing.T) {
	kerr := kgoAccepts(t, kgo.TransactionalID(""))
	if kerr == nil {
		t.Fatal("premise: franz-go starts with TransactionalID(\"\")")
	}
	if _, err := Explain(Input{Client: FranzGo, Producer: map[string]string{"TransactionalID": ""}, Topic: props(safeTopic)}); err == nil {
		t.Errorf("TransactionalID=\"\": franz-go refuses to start (%v), explain explains it", kerr)
	}
}
