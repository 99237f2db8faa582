package eos

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// metrics are a processor's Prometheus series; a nil *metrics (no
// Config.Registerer) records nothing.
type metrics struct {
	restoredRecords *prometheus.CounterVec
	restoreLag      *prometheus.GaugeVec
	commitSeconds   prometheus.Histogram
	aborts          prometheus.Counter
	inputLag        *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, group string) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	labels := prometheus.Labels{"group": group}
	m := &metrics{
		restoredRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_eos_restore_records_total", ConstLabels: labels,
			Help: "Changelog records applied to a local store while restoring it.",
		}, []string{"store", "partition"}),
		restoreLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_eos_restore_remaining_offsets", ConstLabels: labels,
			Help: "Changelog offsets a restoring store has still to read (0 once restored).",
		}, []string{"store", "partition"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weir_eos_commit_seconds", ConstLabels: labels,
			Help:    "Time to end a transaction with a commit (EndTxn and its wait).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		aborts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weir_eos_aborted_transactions_total", ConstLabels: labels,
			Help: "Transactions aborted: by a rebalance, a Process error or a failed produce.",
		}),
		inputLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_eos_input_lag_offsets", ConstLabels: labels,
			Help: "Input offsets behind the partition's high watermark after the last polled record.",
		}, []string{"topic", "partition"}),
	}
	for _, c := range []prometheus.Collector{m.restoredRecords, m.restoreLag, m.commitSeconds, m.aborts, m.inputLag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) restoreRemaining(store string, p int32, remaining int64) {
	if m == nil {
		return
	}
	m.restoreLag.WithLabelValues(store, strconv.Itoa(int(p))).Set(float64(max(remaining, 0)))
}

func (m *metrics) restored(store string, p int32, records, remaining int64) {
	if m == nil {
		return
	}
	part := strconv.Itoa(int(p))
	m.restoredRecords.WithLabelValues(store, part).Add(float64(records))
	m.restoreLag.WithLabelValues(store, part).Set(float64(max(remaining, 0)))
}

func (m *metrics) committed(seconds float64) {
	if m != nil {
		m.commitSeconds.Observe(seconds)
	}
}

func (m *metrics) aborted() {
	if m != nil {
		m.aborts.Inc()
	}
}

// polled records each partition's lag behind its high watermark as of the
// fetch that returned its records.
func (m *metrics) polled(fs kgo.Fetches) {
	if m == nil {
		return
	}
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			lag := p.HighWatermark - p.Records[n-1].Offset - 1
			m.inputLag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(lag, 0)))
		}
	})
}
