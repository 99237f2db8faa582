package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// CompareRound is one round of a comparison: the same workload against A,
// then against B.
type CompareRound struct {
	Round int         `json:"round"`
	A     *LoadResult `json:"a"`
	B     *LoadResult `json:"b"`
}

// MetricRatio is one metric of a comparison: its value in every round on
// each side, the medians, and B's median over A's.
type MetricRatio struct {
	Name    string    `json:"name"`
	A       []float64 `json:"a"`
	B       []float64 `json:"b"`
	MedianA float64   `json:"median_a"`
	MedianB float64   `json:"median_b"`
	// Ratio is MedianB / MedianA, 0 when MedianA is 0.
	Ratio float64 `json:"ratio"`
}

// CompareResult holds a comparison of two clusters under one workload.
type CompareResult struct {
	A       []string       `json:"a"`
	B       []string       `json:"b"`
	Options LoadOptions    `json:"options"`
	Rounds  []CompareRound `json:"rounds"`
	Metrics []MetricRatio  `json:"metrics"`
}

// Compare runs the workload o against a and then b, rounds times (A, B,
// A, B, ...), so drift in the machine's load over time falls on both
// alike, and computes each metric's ratio B/A from the medians of the
// rounds. A broker process is looked for on each side by its address (o's
// BrokerPID is not used). progress, if not nil, gets one line per run.
func Compare(ctx context.Context, a, b []string, o LoadOptions, rounds int, progress io.Writer) (*CompareResult, error) {
	if rounds < 1 {
		return nil, fmt.Errorf("invalid --rounds %d: want at least 1", rounds)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.BrokerPID = 0
	res := &CompareResult{A: a, B: b}
	for i := 1; i <= rounds; i++ {
		round := CompareRound{Round: i}
		for _, side := range []struct {
			name  string
			addrs []string
			out   **LoadResult
		}{{"A", a, &round.A}, {"B", b, &round.B}} {
			if i > 1 || side.name == "B" {
				select {
				case <-ctx.Done():
					return res, ctx.Err()
				case <-time.After(compareRoundPause):
				}
			}
			r, err := Load(ctx, side.addrs, o)
			if err != nil {
				return res, fmt.Errorf("round %d, %s (%s): %w", i, side.name, strings.Join(side.addrs, ","), err)
			}
			*side.out = r
			if progress != nil {
				fmt.Fprintf(progress, "round %d %s: %.0f records/s, end-to-end %s\n", i, side.name, r.ProducedPerSec, r.EndToEnd)
			}
		}
		res.Rounds = append(res.Rounds, round)
		res.Options = round.A.Options
	}
	res.Metrics = compareMetrics(res.Rounds)
	return res, nil
}

// loadMetrics are the figures a comparison puts side by side.
var loadMetrics = []struct {
	name string
	get  func(*LoadResult) float64
}{
	{"produced records/s", func(r *LoadResult) float64 { return r.ProducedPerSec }},
	{"consumed records/s", func(r *LoadResult) float64 { return r.ConsumedPerSec }},
	{"end-to-end p50 ms", func(r *LoadResult) float64 { return ms(r.EndToEnd.P50) }},
	{"end-to-end p99 ms", func(r *LoadResult) float64 { return ms(r.EndToEnd.P99) }},
	{"end-to-end p99.9 ms", func(r *LoadResult) float64 { return ms(r.EndToEnd.P999) }},
	{"end-to-end max ms", func(r *LoadResult) float64 { return ms(r.EndToEnd.Max) }},
	{"ack p50 ms", func(r *LoadResult) float64 { return ms(r.Ack.P50) }},
	{"ack p99 ms", func(r *LoadResult) float64 { return ms(r.Ack.P99) }},
	{"ack p99.9 ms", func(r *LoadResult) float64 { return ms(r.Ack.P999) }},
	{"ack max ms", func(r *LoadResult) float64 { return ms(r.Ack.Max) }},
	{"broker CPU ns/record", func(r *LoadResult) float64 { return r.BrokerCPUPerRecord }},
}

func compareMetrics(rounds []CompareRound) []MetricRatio {
	var out []MetricRatio
	for _, m := range loadMetrics {
		mr := MetricRatio{Name: m.name}
		for _, r := range rounds {
			mr.A = append(mr.A, m.get(r.A))
			mr.B = append(mr.B, m.get(r.B))
		}
		mr.MedianA, mr.MedianB = median(mr.A), median(mr.B)
		if mr.MedianA != 0 {
			mr.Ratio = mr.MedianB / mr.MedianA
		}
		out = append(out, mr)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteText prints the comparison: per metric, each round's figure on
// both sides, the medians and the ratio B/A.
func (c *CompareResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "workload: %s\n", c.Options)
	fmt.Fprintf(w, "A: %s\nB: %s\n", strings.Join(c.A, ","), strings.Join(c.B, ","))
	fmt.Fprintf(w, "%d rounds, run A then B in each; ratio = median B / median A\n", len(c.Rounds))
	fmt.Fprintf(w, "%-22s %12s %12s %7s   %s\n", "metric", "median A", "median B", "B/A", "rounds A | B")
	for _, m := range c.Metrics {
		if m.MedianA == 0 && m.MedianB == 0 {
			continue // e.g. broker CPU when no broker process was found
		}
		ratio := "-"
		if m.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", m.Ratio)
		}
		fmt.Fprintf(w, "%-22s %12s %12s %7s   %s | %s\n", m.Name, figure(m.MedianA), figure(m.MedianB), ratio, figures(m.A), figures(m.B))
	}
}

func figure(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func figures(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = figure(x)
	}
	return strings.Join(s, " ")
}

// compareRoundPause separates runs, so one run's background work on the
// machine (a broker's flushes, a closing client) does not land in the
// next.
const compareRoundPause = 500 * time.Millisecond
