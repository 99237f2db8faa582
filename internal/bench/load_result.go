package bench

import (
	"fmt"
	"io"
	"time"
)

// Percentiles summarises a latency distribution; each value is within
// 1.6% of the true one (the histogram's bucket width).
type Percentiles struct {
	Count uint64        `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

func percentilesOf(h *latencyHistogram) Percentiles {
	return Percentiles{
		Count: h.Count(),
		P50:   h.Quantile(0.5),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   h.Quantile(1),
	}
}

// LoadSecond is one second of a load run, counted from the run's start
// (warmup included).
type LoadSecond struct {
	Second int  `json:"second"`
	Warmup bool `json:"warmup"`
	// Acked is the records acknowledged in this second, Consumed the
	// records consumers first received in it.
	Acked    int64 `json:"acked"`
	Consumed int64 `json:"consumed"`
	// EndToEnd is the latency of the records consumed in this second.
	EndToEnd Percentiles `json:"end_to_end"`
}

// LoadResult holds the figures of a load run. Counts and latencies cover
// the records sent during the measured window (after the warmup); the
// timeline covers the whole run.
type LoadResult struct {
	Options LoadOptions `json:"options"`
	Brokers []string    `json:"brokers"`
	Started time.Time   `json:"started"`
	// Measured is the window's length: the run's duration after warmup.
	Measured time.Duration `json:"measured_ns"`
	// Produced is the records sent in the window and acknowledged;
	// Consumed the distinct ones of them the consumers received, and
	// Missing those acknowledged but never received. Duplicates counts
	// second deliveries of any record of the run.
	Produced   int64 `json:"produced"`
	Consumed   int64 `json:"consumed"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	// ProduceErrors counts records whose produce failed, over the run.
	ProduceErrors     int64   `json:"produce_errors"`
	FirstProduceError string  `json:"first_produce_error,omitempty"`
	ProducedPerSec    float64 `json:"produced_per_sec"`
	ConsumedPerSec    float64 `json:"consumed_per_sec"`
	// EndToEnd is from the producer's send (the time stamped in the
	// value before kgo's Produce) to the consumer's poll returning the
	// record; Ack from the same send to the producer's acknowledgement.
	EndToEnd Percentiles `json:"end_to_end"`
	Ack      Percentiles `json:"ack"`
	// SendDelay is how late, against the producers' schedule, the
	// records of the window were sent (only at a fixed rate). A large
	// one means the generator could not keep the rate (its buffer was
	// full, or it had no CPU), and the latencies then leave out the time
	// the records should already have been on their way.
	SendDelay *Percentiles `json:"send_delay,omitempty"`
	// Commits is the time of each commit in the window (flush and
	// EndTransaction), when the run is transactional.
	Commits *Percentiles `json:"commits,omitempty"`
	// BrokerPID is the broker process measured, 0 when none was;
	// BrokerCPU its user and system CPU over the window and
	// BrokerCPUPerRecord that divided by Produced, in nanoseconds (each
	// record is produced once and consumed once).
	BrokerPID          int           `json:"broker_pid,omitempty"`
	BrokerCPU          time.Duration `json:"broker_cpu_ns,omitempty"`
	BrokerCPUPerRecord float64       `json:"broker_cpu_ns_per_record,omitempty"`
	Timeline           []LoadSecond  `json:"timeline"`
}

// WriteText prints the result as a person reads it.
func (r *LoadResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "workload: %s\n", r.Options)
	fmt.Fprintf(w, "produced %d records (%.0f/s), consumed %d (%.0f/s) in the %v window; missing %d, duplicates %d, produce errors %d\n",
		r.Produced, r.ProducedPerSec, r.Consumed, r.ConsumedPerSec, r.Measured, r.Missing, r.Duplicates, r.ProduceErrors)
	if r.FirstProduceError != "" {
		fmt.Fprintf(w, "first produce error: %s\n", r.FirstProduceError)
	}
	fmt.Fprintf(w, "end-to-end latency: %s\n", r.EndToEnd)
	fmt.Fprintf(w, "ack latency:        %s\n", r.Ack)
	if r.Commits != nil {
		fmt.Fprintf(w, "commit latency:     %s (%d commits)\n", r.Commits, r.Commits.Count)
	}
	if r.SendDelay != nil {
		fmt.Fprintf(w, "sent behind schedule: %s\n", r.SendDelay)
	}
	if r.BrokerPID > 0 {
		fmt.Fprintf(w, "broker CPU: %.0f ns/record (pid %d, %v over the window)\n", r.BrokerCPUPerRecord, r.BrokerPID, r.BrokerCPU)
	}
	fmt.Fprintln(w, "per second (w = warmup): acked consumed e2e-p50 e2e-p99 e2e-max")
	for _, s := range r.Timeline {
		mark := " "
		if s.Warmup {
			mark = "w"
		}
		fmt.Fprintf(w, "%4d%s %8d %8d %9v %9v %9v\n", s.Second, mark, s.Acked, s.Consumed,
			roundDuration(s.EndToEnd.P50), roundDuration(s.EndToEnd.P99), roundDuration(s.EndToEnd.Max))
	}
}

// String prints the percentiles on one line.
func (p Percentiles) String() string {
	return fmt.Sprintf("p50 %v, p99 %v, p99.9 %v, max %v",
		roundDuration(p.P50), roundDuration(p.P99), roundDuration(p.P999), roundDuration(p.Max))
}

// roundDuration keeps three significant digits or so.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
