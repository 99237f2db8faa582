package lab

import (
	"strings"
	"testing"
)

// `weir lab --only` takes a comma-separated list, and `weir explain`
// prints --only commands naming one scenario each: a comma inside a name
// would split it into patterns that select other rows.
func TestNoScenarioNameHoldsAComma(t *testing.T) {
	for _, cluster := range []int{0, 3} {
		for _, line := range Plan(Config{Seed: 1, Cluster: cluster}) {
			name, _, _ := strings.Cut(line, ": ")
			if strings.Contains(name, ",") {
				t.Errorf("scenario %q holds a comma", name)
			}
		}
	}
}
