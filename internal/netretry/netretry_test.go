package netretry

import (
	"testing"
	"time"
)

// Pauses start at 5 ms and double to 1 s; only the first failure of a
// run and the ones at the longest pause are logged; an accept starts
// over.
func TestPausesDoubleToASecondAndLogOnlyTheFirstAndTheLongest(t *testing.T) {
	var b Backoff
	var pauses []time.Duration
	var logged []int
	for i := range 12 {
		p, log := b.Failed()
		pauses = append(pauses, p)
		if log {
			logged = append(logged, i)
		}
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000}
	for i, w := range want {
		if pauses[i] != w*time.Millisecond {
			t.Fatalf("pauses %v, want %v ms", pauses, want)
		}
	}
	if len(logged) != 5 || logged[0] != 0 || logged[1] != 8 {
		t.Fatalf("logged failures %v, want the first and those at 1 s", logged)
	}
	b.Accepted()
	if p, log := b.Failed(); p != 5*time.Millisecond || !log {
		t.Fatalf("after an accept: pause %v, logged %v; want 5 ms, logged", p, log)
	}
}
