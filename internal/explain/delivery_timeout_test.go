package explain

import "testing"

// delivery.timeout.ms (librdkafka: message.timeout.ms) bounds the time a
// record may spend being retried: when it runs out the record fails, as
// with retries=0 (KIP-91: "setting delivery.timeout.ms to a minimum of
// request.timeout.ms + retry.backoff.ms + linger.ms would allow at least
// one attempt"). A librdkafka producer with message.timeout.ms=50 (above
// its linger.ms of 5, so librdkafka starts) fails every record that meets
// a leader move, since the first retry waits retry.backoff.ms=100. The
// same failure is classified the same way both times: delivery.timeout.ms,
// which the guide lists as a producer setting that decides the guarantee,
// decides it as retries=0 does.
func TestADeliveryTimeoutShorterThanOneRetryLosesRecordsAsRetriesZeroDoes(t *testing.T) {
	consumer := props("enable.auto.commit=false weir.commit=after-processing weir.dedup=true")
	noRetries, err := Explain(Input{Client: Librdkafka, Producer: props("acks=all message.send.max.retries=0"), Consumer: consumer, Topic: props(safeTopic)})
	if err != nil {
		t.Fatal(err)
	}
	noTime, err := Explain(Input{Client: Librdkafka, Producer: props("acks=all message.timeout.ms=50"), Consumer: consumer, Topic: props(safeTopic)})
	if err != nil {
		t.Fatal(err)
	}
	if noRetries.Guarantee != AtMostOnce {
		t.Fatalf("premise: retries=0 is %s, want at-most-once", noRetries.Guarantee)
	}
	if noTime.Guarantee != noRetries.Guarantee {
		t.Errorf("message.timeout.ms=50 leaves no time for one retry, as retries=0 allows none: explain says %s for it and %s for retries=0", noTime.Guarantee, noRetries.Guarantee)
	}
}
