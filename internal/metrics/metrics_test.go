package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequestsAreCountedByAPIWithFollowersFetchesApart(t *testing.T) {
	m := New()
	m.Request(0, false, time.Millisecond, 100, 50)
	m.Request(1, false, time.Millisecond, 10, 500)
	m.Request(1, true, time.Millisecond, 10, 700)
	m.Request(999, false, time.Millisecond, 1, 1) // no such API: ignored
	for api, want := range map[string]float64{"Produce": 1, "Fetch": 1, "FetchFollower": 1} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(api)); got != want {
			t.Errorf("%s: %v, want %v", api, got, want)
		}
	}
	if got := testutil.ToFloat64(m.bytesOut); got != 1250 {
		t.Errorf("response bytes %v, want 1250", got)
	}
}

// BenchmarkObserveRequest is what metrics add to every request.
func BenchmarkObserveRequest(b *testing.B) {
	m := New()
	for b.Loop() {
		m.Request(0, false, time.Millisecond, 1000, 100)
	}
}
