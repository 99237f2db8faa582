package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// WriteJSON writes v (a *LoadResult or a *CompareResult) as one indented
// JSON document. Durations are integers of nanoseconds (fields ending in
// _ns).
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteLoadHTMLFile writes the result as one self-contained HTML page: a
// summary table and inline SVG charts of latency and throughput over time,
// with no script and no outside resource.
func WriteLoadHTMLFile(path string, r *LoadResult) error {
	var buf bytes.Buffer
	if err := WriteLoadHTML(&buf, r); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteLoadHTML renders the page WriteLoadHTMLFile writes.
func WriteLoadHTML(w io.Writer, r *LoadResult) error {
	var xs []float64
	var p50, p99, pmax, acked, consumed []float64
	warmupEnd := 0.0
	for _, s := range r.Timeline {
		x := float64(s.Second + 1)
		xs = append(xs, x)
		p50 = append(p50, ms(s.EndToEnd.P50))
		p99 = append(p99, ms(s.EndToEnd.P99))
		pmax = append(pmax, ms(s.EndToEnd.Max))
		acked = append(acked, float64(s.Acked))
		consumed = append(consumed, float64(s.Consumed))
		if s.Warmup {
			warmupEnd = x
		}
	}
	data := struct {
		R                   *LoadResult
		When                string
		Latency, Throughput template.HTML
		Rows                [][2]string
	}{
		R:    r,
		When: r.Started.Format(time.RFC3339),
		Latency: lineChart("end-to-end latency of the records consumed each second, ms", xs, warmupEnd, []series{
			{"max", "#d64541", pmax}, {"p99", "#e08a1e", p99}, {"p50", "#3b7dd8", p50},
		}),
		Throughput: lineChart("records per second", xs, warmupEnd, []series{
			{"acknowledged", "#3b7dd8", acked}, {"consumed", "#2a9d5c", consumed},
		}),
	}
	row := func(k, v string) { data.Rows = append(data.Rows, [2]string{k, v}) }
	row("brokers", strings.Join(r.Brokers, ", "))
	row("produced in the window", fmt.Sprintf("%d records (%.0f/s)", r.Produced, r.ProducedPerSec))
	row("consumed in the window", fmt.Sprintf("%d records (%.0f/s)", r.Consumed, r.ConsumedPerSec))
	row("missing, duplicates, produce errors", fmt.Sprintf("%d, %d, %d", r.Missing, r.Duplicates, r.ProduceErrors))
	row("end-to-end latency", r.EndToEnd.String())
	row("ack latency", r.Ack.String())
	if r.Commits != nil {
		row("commit latency", fmt.Sprintf("%s (%d commits)", r.Commits, r.Commits.Count))
	}
	if r.SendDelay != nil {
		row("sent behind schedule", r.SendDelay.String())
	}
	if r.BrokerPID > 0 {
		row("broker CPU", fmt.Sprintf("%.0f ns/record (pid %d, %v over the window)", r.BrokerCPUPerRecord, r.BrokerPID, r.BrokerCPU))
	}
	return loadReportTemplate.Execute(w, data)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// series is one line of a line chart.
type series struct {
	name, color string
	values      []float64
}

// Line chart geometry, in pixels.
const (
	lineW, lineH          = 760, 260
	linePadL, linePadR    = 64, 110
	linePadT, linePadB    = 28, 34
	lineTicks             = 5
	lineLegendRowH        = 18
	lineMinPointsForLines = 2
)

// lineChart draws series over xs (seconds) as inline SVG, shading the
// warmup (x ≤ warmupEnd) grey.
func lineChart(title string, xs []float64, warmupEnd float64, ss []series) template.HTML {
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		lineW, lineH, lineW, lineH, html.EscapeString(title))
	fmt.Fprintf(&sb, `<text x="0" y="16" class="ct">%s</text>`, html.EscapeString(title))
	plotW := float64(lineW - linePadL - linePadR)
	plotH := float64(lineH - linePadT - linePadB)
	maxX, maxY := 1.0, 0.0
	for _, x := range xs {
		maxX = math.Max(maxX, x)
	}
	for _, s := range ss {
		for _, v := range s.values {
			maxY = math.Max(maxY, v)
		}
	}
	maxY = niceCeil(maxY)
	px := func(x float64) float64 { return linePadL + x/maxX*plotW }
	py := func(y float64) float64 { return linePadT + plotH - y/maxY*plotH }
	if warmupEnd > 0 {
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="#eee"><title>warmup (not measured)</title></rect>`,
			linePadL, linePadT, px(warmupEnd)-linePadL, plotH)
	}
	for i := 0; i <= lineTicks; i++ {
		y := maxY * float64(i) / lineTicks
		fmt.Fprintf(&sb, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, linePadL, py(y), linePadL+plotW, py(y))
		fmt.Fprintf(&sb, `<text x="%d" y="%.1f" class="cl" text-anchor="end">%s</text>`, linePadL-6, py(y)+4, axisNumber(y))
		x := maxX * float64(i) / lineTicks
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" class="cl" text-anchor="middle">%ss</text>`, px(x), lineH-linePadB+16, axisNumber(x))
	}
	for k, s := range ss {
		var pts []string
		for i, v := range s.values {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[i]), py(v)))
		}
		if len(pts) >= lineMinPointsForLines {
			fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"><title>%s</title></polyline>`,
				s.color, strings.Join(pts, " "), html.EscapeString(s.name))
		} else if len(pts) == 1 {
			fmt.Fprintf(&sb, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s</title></circle>`,
				px(xs[0]), py(s.values[0]), s.color, html.EscapeString(s.name))
		}
		ly := linePadT + k*lineLegendRowH + 10
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/>`, lineW-linePadR+12, ly-4, s.color)
		fmt.Fprintf(&sb, `<text x="%d" y="%d" class="cl">%s</text>`, lineW-linePadR+30, ly, html.EscapeString(s.name))
	}
	fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="#999"/>`, linePadL, linePadT, linePadL, linePadT+plotH)
	fmt.Fprintf(&sb, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`, linePadL, linePadT+plotH, linePadL+plotW, linePadT+plotH)
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so the axis
// ticks fall on round numbers.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func axisNumber(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", math.Round(v/1e5)/10)
	case v >= 1e4:
		return fmt.Sprintf("%gk", math.Round(v/1e2)/10)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

var loadReportTemplate = template.Must(template.New("load").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>weir bench: {{.R.Options}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:900px}
table{border-collapse:collapse;margin:12px 0}td{padding:3px 10px;border-bottom:1px solid #eee}
td:first-child{color:#555}.chart{display:block;margin:16px 0}
.ct{font:bold 13px system-ui,sans-serif}.cl{font:11px system-ui,sans-serif;fill:#444}
</style></head><body>
<h1>weir bench</h1>
<p>{{.R.Options}}<br>started {{.When}}</p>
<table>{{range .Rows}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>{{end}}</table>
{{.Latency}}
{{.Throughput}}
<p>Latency is from the producer's send to the consumer's poll returning the record, per second of consumption; the grey band is the warmup, left out of the figures above.</p>
</body></html>
`))
