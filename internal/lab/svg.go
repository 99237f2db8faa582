package lab

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// bar is one row of a bar chart.
type bar struct {
	label string
	value float64
	text  string // the value as shown; formatted from value when empty
}

// Bar chart geometry, in pixels. The label column grows with the longest
// label (charW per character at the 12px font).
const (
	chartPlotW   = 170
	chartValueW  = 64
	chartRowH    = 22
	chartTitleH  = 26
	chartBottomH = 8
	charW        = 7
)

// barChart draws a horizontal bar chart as inline SVG: no script, no
// external resource, so the report renders anywhere.
func barChart(title, color string, bars []bar) template.HTML {
	h := chartTitleH + len(bars)*chartRowH + chartBottomH
	maxV := 0.0
	chartLabelW := 60
	for _, b := range bars {
		maxV = math.Max(maxV, b.value)
		chartLabelW = max(chartLabelW, len(b.label)*charW+10)
	}
	chartWidth := max(chartLabelW+chartPlotW+chartValueW, len(title)*charW+10)
	plotW := float64(chartPlotW)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		chartWidth, h, chartWidth, h, html.EscapeString(title))
	fmt.Fprintf(&sb, `<text x="0" y="16" class="ct">%s</text>`, html.EscapeString(title))
	for i, b := range bars {
		y := chartTitleH + i*chartRowH
		w := 0.0
		if maxV > 0 {
			w = b.value / maxV * plotW
		}
		if b.value > 0 && w < 2 {
			w = 2 // a non-zero count stays visible
		}
		text := b.text
		if text == "" {
			text = formatNumber(b.value)
		}
		fmt.Fprintf(&sb, `<text x="%d" y="%d" class="cl" text-anchor="end">%s</text>`, chartLabelW-6, y+15, html.EscapeString(b.label))
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>`,
			chartLabelW, y+3, w, chartRowH-6, color, html.EscapeString(b.label), html.EscapeString(text))
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" class="cv">%s</text>`, float64(chartLabelW)+w+4, y+15, html.EscapeString(text))
	}
	fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, chartLabelW, chartTitleH, chartLabelW, h-chartBottomH)
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// formatNumber shows counts as integers and rates with at most one
// decimal.
func formatNumber(v float64) string {
	if v == math.Trunc(v) || v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
