package quota

import (
	"sync"
	"time"
)

// Window settings, Kafka's defaults: quota.window.num samples of
// quota.window.size.seconds each.
const (
	DefaultSamples = 11
	DefaultWindow  = time.Second
)

// rate is a windowed rate: values recorded into buckets of window
// length, the oldest dropped as new ones start, and the rate the sum over
// the time the buckets cover (at least all but the current one, so a
// first burst is not read as an infinite rate).
type rate struct {
	buckets []bucket
	last    time.Time
}

type bucket struct {
	start time.Time
	value float64
}

// record adds v at now and returns the rate and the span it was measured
// over.
func (r *rate) record(now time.Time, v float64, samples int, window time.Duration) (float64, time.Duration) {
	r.last = now
	if n := len(r.buckets); n == 0 || now.Sub(r.buckets[n-1].start) >= window {
		r.buckets = append(r.buckets, bucket{start: now})
	}
	r.buckets[len(r.buckets)-1].value += v
	// Drop buckets that ended more than samples windows ago.
	cut := 0
	for cut < len(r.buckets) && now.Sub(r.buckets[cut].start) >= time.Duration(samples)*window {
		cut++
	}
	r.buckets = r.buckets[cut:]
	total := 0.0
	for _, b := range r.buckets {
		total += b.value
	}
	span := now.Sub(r.buckets[0].start)
	if min := time.Duration(samples-1) * window; span < min {
		span = min
	}
	return total / span.Seconds(), span
}

// Sensors hold one rate per sensor key (a quota key and the client it
// counts), safe for concurrent use; a sensor idle for longer than the
// window span is forgotten.
type Sensors struct {
	mu      sync.Mutex
	m       map[string]*rate
	samples int
	window  time.Duration
	pruned  time.Time
}

// NewSensors makes sensors over samples windows of window each.
func NewSensors(samples int, window time.Duration) *Sensors {
	if samples < 2 {
		samples = 2
	}
	return &Sensors{m: make(map[string]*rate), samples: samples, window: window}
}

// Throttle is how long the client of res is throttled at now without
// anything more recorded: positive while it is over its quota.
func (s *Sensors) Throttle(res Resolution, now time.Time) time.Duration {
	return s.Record(res, now, 0)
}

// MaxThrottle is the longest throttle Record returns: the span of the
// samples, as Kafka bounds a throttle by its quota window.
func (s *Sensors) MaxThrottle() time.Duration { return time.Duration(s.samples) * s.window }

// Record adds v (bytes) to the sensor of res at now and returns how long
// the client is to be throttled: 0 within its quota, else as Kafka
// computes it, the time at which the rate over the span would fall back to
// the limit ((rate - limit) / limit × span).
func (s *Sensors) Record(res Resolution, now time.Time, v float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.m[res.Sensor]
	if r == nil {
		r = &rate{}
		s.m[res.Sensor] = r
	}
	observed, span := r.record(now, v, s.samples, s.window)
	if now.Sub(s.pruned) > time.Duration(s.samples)*s.window {
		s.pruned = now
		for k, x := range s.m {
			if now.Sub(x.last) > time.Duration(s.samples)*s.window {
				delete(s.m, k)
			}
		}
	}
	if observed <= res.Limit {
		return 0
	}
	return min(time.Duration((observed-res.Limit)/res.Limit*float64(span)), s.MaxThrottle())
}
