package lab

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"os"
	"time"
)

// WriteHTMLFile writes the report as one self-contained HTML page.
func WriteHTMLFile(path string, r *Report) error {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// panel is a group of charts shown side by side, rows in the same order.
type panel struct {
	Title  string
	Note   string
	Charts []template.HTML
}

type htmlRow struct {
	*Outcome
	Verdict string
	Class   string
	P99ms   string
	Rate    string
}

// WriteHTML renders the report: the semantics table and the trade-off
// charts, all inline.
func WriteHTML(w io.Writer, r *Report) error {
	data := struct {
		R        *Report
		When     string
		Took     string
		Failed   bool
		Rows     []htmlRow
		Panels   []panel
		Matrices []matrix
		Pruned   []prunedGroup
	}{R: r, When: r.Started.UTC().Format(time.RFC3339), Took: fmt.Sprintf("%.1fs", r.Elapsed.Seconds()), Failed: r.Failed()}
	for _, o := range r.Outcomes {
		row := htmlRow{Outcome: o, Verdict: verdict(o), P99ms: "–", Rate: "–"}
		switch row.Verdict {
		case "BROKEN", "error":
			row.Class = "broken"
		case "not run":
			row.Class = "notrun"
		}
		if o.P99 > 0 {
			row.P99ms = fmt.Sprintf("%.1f", float64(o.P99.Microseconds())/1000)
		}
		if o.Throughput > 0 {
			row.Rate = fmt.Sprintf("%.0f", o.Throughput)
		}
		data.Rows = append(data.Rows, row)
	}
	data.Panels = panels(r)
	data.Matrices = matrices(r)
	data.Pruned = prunedGroups(r.Pruned)
	return reportTemplate.Execute(w, data)
}

// panels builds the charts: per producer mode, throughput and latency
// without faults beside loss and duplicates summed over the faults; then
// the same counts for consumer and end-to-end configurations.
func panels(r *Report) []panel {
	var out []panel
	type agg struct {
		rate, p99            float64
		lost, dup, rcv, runs int
	}
	collect := func(side string) ([]string, map[string]*agg) {
		var order []string
		m := map[string]*agg{}
		for _, o := range r.Outcomes {
			if o.Side != side || o.NotRun != "" || o.Err != "" {
				continue
			}
			a := m[o.Config]
			if a == nil {
				a = &agg{}
				m[o.Config] = a
				order = append(order, o.Config)
			}
			if side != "producer" || o.Fault == faultNone {
				a.rate, a.p99 = o.Throughput, float64(o.P99.Microseconds())/1000
			}
			a.lost += o.Lost
			a.dup += o.Duplicated
			a.rcv += o.RCViolations
			a.runs++
		}
		return order, m
	}
	chartsOf := func(order []string, m map[string]*agg, withLatency bool, rateTitle string) []template.HTML {
		var rate, lat, lost, dup []bar
		for _, c := range order {
			a := m[c]
			rate = append(rate, bar{label: c, value: a.rate})
			lat = append(lat, bar{label: c, value: a.p99})
			lost = append(lost, bar{label: c, value: float64(a.lost)})
			dup = append(dup, bar{label: c, value: float64(a.dup)})
		}
		charts := []template.HTML{barChart(rateTitle, "#3b7dd8", rate)}
		if withLatency {
			charts = append(charts, barChart("p99 ack latency, ms (no fault)", "#7a5cc7", lat))
		}
		return append(charts,
			barChart("lost acknowledged records (all faults)", "#d64541", lost),
			barChart("duplicates (all faults)", "#e08a1e", dup))
	}
	if order, m := collect("producer"); len(order) > 0 {
		out = append(out, panel{
			Title:  "Producers: durability and exactly-once against throughput",
			Note:   "Throughput and latency are measured without faults; losses and duplicates are summed over lost acks, connection drops and broker kills.",
			Charts: chartsOf(order, m, true, "records/s acknowledged (no fault)"),
		})
	}
	if p, ok := clusterPanel(r); ok {
		out = append(out, p)
	}
	for _, side := range []struct{ name, title string }{
		{"consumer", "Consumers: commit strategy against redelivery"},
		{"end to end", "End to end: consume-transform-produce in transactions"},
	} {
		if order, m := collect(side.name); len(order) > 0 {
			out = append(out, panel{
				Title:  side.title,
				Note:   "Throughput counts records processed per second across worker kills and restarts.",
				Charts: chartsOf(order, m, false, "records/s processed"),
			})
		}
	}
	return out
}

// prunedGroup is the combinations pruned for one reason.
type prunedGroup struct {
	Why   string
	Names []string
}

// prunedGroups groups the pruned combinations by reason, in order.
func prunedGroups(ps []Pruned) []prunedGroup {
	var out []prunedGroup
	index := map[string]int{}
	for _, p := range ps {
		i, ok := index[p.Why]
		if !ok {
			i = len(out)
			index[p.Why] = i
			out = append(out, prunedGroup{Why: p.Why})
		}
		out[i].Names = append(out[i].Names, p.Name)
	}
	return out
}

// clusterPanel charts the broker-layer rows by configuration: acknowledged
// records lost and writes never acknowledged, summed over the faults, and
// the longest stall.
func clusterPanel(r *Report) (panel, bool) {
	var order []string
	lost, failed, stall := map[string]float64{}, map[string]float64{}, map[string]float64{}
	for _, o := range r.Outcomes {
		if o.Side != sideCluster || o.NotRun != "" || o.Err != "" {
			continue
		}
		if _, ok := lost[o.Config]; !ok {
			order = append(order, o.Config)
		}
		lost[o.Config] += float64(o.Lost)
		failed[o.Config] += float64(o.Sent - o.Acked)
		stall[o.Config] = max(stall[o.Config], o.Stall.Seconds())
	}
	if len(order) == 0 {
		return panel{}, false
	}
	var l, f, s []bar
	for _, c := range order {
		l = append(l, bar{label: c, value: lost[c]})
		f = append(f, bar{label: c, value: failed[c]})
		s = append(s, bar{label: c, value: stall[c]})
	}
	return panel{
		Title: "Broker layer: loss against availability",
		Note:  fmt.Sprintf("A fresh three-node cluster per row, replication factor 3, a producer writing %d records/s through the fault. Loss and writes never acknowledged are summed over the faults; the stall is the longest time without an acknowledgement in any of them.", clusterRate),
		Charts: []template.HTML{
			barChart("lost acknowledged records (all faults)", "#d64541", l),
			barChart("writes never acknowledged (all faults)", "#e08a1e", f),
			barChart("longest stall, s", "#7a5cc7", s),
		},
	}, true
}

var reportTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>weir lab report — seed {{.R.Seed}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 6px; }
.meta { color: #555; margin-bottom: 12px; }
.status { display: inline-block; padding: 2px 8px; border-radius: 4px; color: #fff; font-weight: 600; }
.status.ok { background: #2e8b57; } .status.bad { background: #c0392b; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.l, th.l { text-align: left; }
td.w { white-space: normal; min-width: 260px; max-width: 420px; font-size: 12px; color: #444; }
table.matrix td.c { text-align: center; }
table.matrix td.ok { background: #e6f4ea; }
table.matrix td.bad { background: #fde2e0; color: #c0392b; font-weight: 700; }
table.matrix td.na { color: #999; }
tr.broken td { background: #fde2e0; }
tr.notrun td { color: #999; }
td.v-holds { color: #2e8b57; font-weight: 600; }
td.v-BROKEN, td.v-error { color: #c0392b; font-weight: 700; }
.charts { display: flex; flex-wrap: wrap; gap: 12px 24px; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #222; }
svg.chart text.ct { font-weight: 600; }
.note { color: #555; margin: 0 0 8px; }
ul.viol { color: #c0392b; }
</style>
</head>
<body>
<h1>weir lab: delivery guarantees under injected faults</h1>
<div class="meta">seed {{.R.Seed}} · target {{.R.Target}} · started {{.When}} · took {{.Took}} ·
{{if .Failed}}<span class="status bad">a guarantee was broken</span>{{else}}<span class="status ok">every claimed guarantee held</span>{{end}}</div>
<p class="note">Each row is one configuration under one fault. Lost counts acknowledged records never received; duplicated counts receptions beyond the first; reordered counts records received after a later record of their partition; rc-viol counts aborted or uncommitted records a read_committed consumer received. A row is judged only against the guarantee it claims: at-most-once forbids duplicates, at-least-once forbids losing acknowledged records, exactly-once forbids both and read_committed violations.</p>
<h2>Semantics at a glance</h2>
<p class="note">Rows are configurations, columns faults; each cell is lost / duplicated, green where the claimed guarantee held, red where it broke. Broker-layer cells add the writes never acknowledged (failed): what the partition refused while it could not keep the claim.</p>
{{range .Matrices}}<table class="matrix">
<thead><tr><th class="l">{{.Side}}</th><th class="l">guarantee</th>{{range .Faults}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr><td class="l">{{.Config}}</td><td class="l">{{.Claim}}</td>{{range .Cells}}<td class="c {{.Class}}">{{.Text}}</td>{{end}}</tr>
{{end}}</tbody></table><br>
{{end}}
{{range .Panels}}<h2>{{.Title}}</h2>
<p class="note">{{.Note}}</p>
<div class="charts">{{range .Charts}}{{.}}{{end}}</div>
{{end}}
{{if .Pruned}}<h2>Combinations not run</h2>
<p class="note">Each would measure what a row already does.</p>
<table id="pruned"><thead><tr><th class="l">why not</th><th class="l">combinations</th></tr></thead><tbody>
{{range .Pruned}}<tr><td class="l w">{{.Why}}</td><td class="l">{{range $i, $n := .Names}}{{if $i}}<br>{{end}}{{$n}}{{end}}</td></tr>
{{end}}</tbody></table>
{{end}}
<h2>Semantics table</h2>
<table id="semantics">
<thead><tr><th class="l">side</th><th class="l">configuration</th><th class="l">fault</th><th class="l">guarantee</th><th>sent</th><th>acked</th><th>delivered</th><th>lost</th><th>duplicated</th><th>reordered</th><th>rc-viol</th><th>records/s</th><th>p99 ms</th><th class="l">verdict</th><th class="l">notes</th><th class="l">fault schedule</th></tr></thead>
<tbody>
{{range .Rows}}<tr class="{{.Class}}"><td class="l">{{.Side}}</td><td class="l">{{.Config}}</td><td class="l">{{.Fault}}</td><td class="l">{{.Claim}}</td>{{if or .NotRun .Err}}<td colspan="9"></td><td class="l v-{{.Verdict}}">{{.Verdict}}</td><td class="l w">{{.NotRun}}{{.Err}}</td><td class="l w">{{.Schedule}}</td>{{else}}<td>{{.Sent}}</td><td>{{.Acked}}</td><td>{{.Delivered}}</td><td>{{.Lost}}</td><td>{{.Duplicated}}</td><td>{{.Reordered}}</td><td>{{.RCViolations}}</td><td>{{.Rate}}</td><td>{{.P99ms}}</td><td class="l v-{{.Verdict}}">{{.Verdict}}</td><td class="l w">{{.Notes}}{{range .Violations}}<br>{{.}}{{end}}</td><td class="l w">{{.Schedule}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
</body>
</html>
`))
