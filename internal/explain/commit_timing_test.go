package explain

import "testing"

// The Java consumer's auto-commit commits, in poll(), the positions of
// what the previous poll() returned; it does not stop the application
// from also calling commitSync() itself. commitSync() commits the offsets
// the last poll() returned (KafkaConsumer javadoc, "Manual Offset
// Control"), so an application that calls it before processing and dies
// mid-batch has committed past records it never processed: they are lost,
// whatever auto-commit does. explain must not drop
// weir.commit=before-processing as librdkafka's auto-commit would make it
// moot, nor call the configuration at-least-once.
func TestJavaAutoCommitWithOffsetsCommittedBeforeProcessingIsNotAtLeastOnce(t *testing.T) {
	ex, err := Explain(Input{Client: Java, Consumer: props("enable.auto.commit=true weir.commit=before-processing"), Topic: props(safeTopic)})
	if err != nil {
		t.Fatal(err)
	}
	if ex.layer(Consumer).Guarantee == AtLeastOnce || ex.Guarantee == AtLeastOnce {
		t.Errorf("a Java consumer that commits before processing loses what it had not processed when it dies; explain says the consumer is %s, end to end %s (failures %v)",
			ex.layer(Consumer).Guarantee, ex.Guarantee, ruleIDs(ex.Failures))
	}
}
