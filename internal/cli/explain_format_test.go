package cli

import (
	"strings"
	"testing"

	"github.com/weir-broker/weir/internal/explain"
	"github.com/weir-broker/weir/internal/lab"
)

// A scenario the lab did not run measured nothing: the summary counts it
// apart from the measurements that agree with the prediction.
func TestVerifySummaryDoesNotCountAScenarioNotRunAsConsistent(t *testing.T) {
	ran := &lab.Outcome{Side: "producer", Config: "acks=all idempotent", Fault: "lost acks"}
	ran.Acked = 200
	notRun := &lab.Outcome{Side: "producer", Config: "acks=all idempotent", Fault: "broker killed", NotRun: "killing a broker needs the lab's own broker"}
	checks := []explain.Check{
		{Scenario: ran.Name(), Layer: explain.Producer, Predicted: explain.ExactlyOnce, Outcome: ran},
		{Scenario: notRun.Name(), Layer: explain.Producer, Predicted: explain.ExactlyOnce, Outcome: notRun},
	}
	var out strings.Builder
	if writeChecks(&out, checks, nil) {
		t.Fatalf("no measurement contradicts the prediction, yet reported as contradicted:\n%s", out.String())
	}
	if s := out.String(); !strings.Contains(s, "verify: 1 measurement consistent with the prediction; 1 scenario not run") {
		t.Errorf("summary does not set the scenario not run apart:\n%s", s)
	}
}
