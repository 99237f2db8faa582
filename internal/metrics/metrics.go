// Package metrics is what an operator watches a Weir node through:
// Prometheus metrics under Kafka's meanings (the README lists each), served
// on the admin listener with the health and profiling endpoints. Request
// counts, latencies and bytes are recorded as requests are answered, at
// the cost of a few atomic operations; everything about partitions,
// transactions and groups is read when Prometheus scrapes, by collectors
// the broker registers, so the produce and fetch paths pay nothing for it.
package metrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Namespace prefixes every metric.
const Namespace = "weir"

// latencyBuckets span a fsynced produce on a fast disk to a long-polling
// fetch: 0.5 ms to 30 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2.5, 14)

// Metrics are a node's metrics and the registry that serves them.
type Metrics struct {
	Registry *prometheus.Registry

	requests  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	bytesIn   prometheus.Counter
	bytesOut  prometheus.Counter
	conns     prometheus.Gauge
	authFails prometheus.Counter
	flushTime prometheus.Histogram
	flushSize prometheus.Histogram

	// byKey caches each API's series, [0] for clients and [1] for
	// followers' fetches, so a request touches no map.
	byKey [kmsg.MaxKey + 1][2]apiSeries
}

type apiSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// New makes the metrics and registers them with the Go runtime's and
// the process's.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "requests_total",
		Help: "Requests answered, by API (Fetch from followers apart, as FetchFollower)."}, []string{"api"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "request_errors_total",
		Help: "Error codes in answers, by API and error (Kafka's ErrorsPerSec): each partition's, group's or resource's error counts once; NONE is not counted."}, []string{"api", "error"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "request_duration_seconds",
		Help: "Time from a request's arrival to its answer's write, by API (Kafka's TotalTimeMs); a fetch's includes its long poll.", Buckets: latencyBuckets}, []string{"api"})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "request_bytes_total", Help: "Bytes of requests received (Kafka's BytesInPerSec counts only records)."})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "response_bytes_total", Help: "Bytes of answers sent."})
	m.conns = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "connections", Help: "Open client connections."})
	m.authFails = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "authentication_failures_total", Help: "Failed SASL authentications."})
	m.flushTime = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "log_flush_duration_seconds",
		Help: "Time of each fsync that makes a partition's appended records durable (Kafka's LogFlushRateAndTimeMs); acks=all waits for one.", Buckets: latencyBuckets})
	m.flushSize = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "log_flush_offsets",
		Help: "Offsets (records) each fsync made durable: how many writes share one fsync.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)})
	m.Registry.MustRegister(m.requests, m.errors, m.latency, m.bytesIn, m.bytesOut, m.conns, m.authFails, m.flushTime, m.flushSize,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for k := range m.byKey {
		name := kmsg.NameForKey(int16(k))
		if name == "" || strings.HasPrefix(name, "Unknown") {
			continue
		}
		for f := range 2 {
			api := name
			if f == 1 {
				if k != 1 {
					continue
				}
				api = "FetchFollower"
			}
			m.byKey[k][f] = apiSeries{count: m.requests.WithLabelValues(api), latency: m.latency.WithLabelValues(api)}
		}
	}
	return m
}

// Request implements server.Observer.
func (m *Metrics) Request(key int16, follower bool, d time.Duration, in, out int) {
	if key < 0 || int(key) >= len(m.byKey) {
		return
	}
	f := 0
	if follower {
		f = 1
	}
	s := m.byKey[key][f]
	if s.count == nil {
		return
	}
	s.count.Inc()
	s.latency.Observe(d.Seconds())
	m.bytesIn.Add(float64(in))
	m.bytesOut.Add(float64(out))
}

// Connections implements server.Observer.
func (m *Metrics) Connections(delta int) { m.conns.Add(float64(delta)) }

// AuthenticationFailed implements server.Observer.
func (m *Metrics) AuthenticationFailed() { m.authFails.Inc() }

// LogSync records one fsync of a partition's log: its duration and the
// offsets it made durable (broker.Config.OnLogSync).
func (m *Metrics) LogSync(d time.Duration, offsets int64) {
	m.flushTime.Observe(d.Seconds())
	m.flushSize.Observe(float64(offsets))
}
