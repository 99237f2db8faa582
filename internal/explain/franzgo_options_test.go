package explain

import (
	"strings"
	"testing"
)

// kgo.AllowIdempotentProduceCancellation "permits cancellation of
// in-flight idempotent records, at the cost of breaking idempotency's
// duplicate-avoidance guarantee": with it, RecordDeliveryTimeout,
// RecordRetries and context cancellation fail records the broker may
// already hold, and a record the application produces again may be
// stored twice (kgo config.go). explain must not file the option under
// "no bearing on the guarantee", nor call the producer exactly-once.
func TestAllowIdempotentProduceCancellationTakesExactlyOnceFromTheProducer(t *testing.T) {
	plain, err := Explain(Input{Client: FranzGo, Producer: props("RecordDeliveryTimeout=5s"), Consumer: props("DisableAutoCommit=true"), Topic: props(safeTopic)})
	if err != nil {
		t.Fatal(err)
	}
	cancelling, err := Explain(Input{Client: FranzGo, Producer: props("RecordDeliveryTimeout=5s AllowIdempotentProduceCancellation=true"), Consumer: props("DisableAutoCommit=true"), Topic: props(safeTopic)})
	if err != nil {
		t.Fatal(err)
	}
	for _, ig := range cancelling.Config.Ignored {
		if strings.Contains(ig, "AllowIdempotentProduceCancellation") {
			t.Errorf("AllowIdempotentProduceCancellation is ignored as having no bearing on the guarantee")
		}
	}
	if cancelling.layer(Producer).Guarantee == ExactlyOnce {
		t.Errorf("producer with AllowIdempotentProduceCancellation: %s, as without it (%s); kgo documents that it breaks duplicate avoidance",
			cancelling.layer(Producer).Guarantee, plain.layer(Producer).Guarantee)
	}
}

// franz-go has no properties, only kgo options (client.go accepts their
// names as keys). The changes explain suggests to a franz-go user are
// spelled as kgo options (kgo.RequiredAcks(kgo.AllISRAcks()), not
// "acks=all"), or as the weir.* settings that say what the application
// does.
func TestExplainSuggestsOnlyKgoOptionsToFranzGoUsers(t *testing.T) {
	ex, err := Explain(Input{Client: FranzGo, Producer: props("RequiredAcks=LeaderAck DisableIdempotentWrite=true"), Topic: props(safeTopic)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Changes) == 0 {
		t.Fatal("premise: no change suggested")
	}
	for _, ch := range ex.Changes {
		if _, franz := aliases[FranzGo][ch.Key]; franz || strings.HasPrefix(ch.Key, "weir.") {
			continue
		}
		t.Errorf("suggested to a franz-go user: %s %s, which is no kgo option", ch.Layer, ch.Setting)
	}
}
