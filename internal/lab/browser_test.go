package lab

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is the browser the report is rendered in.
const chromiumPath = "/usr/bin/chromium"

// assertReportRenders opens the report in headless Chromium and checks
// what is laid out: a table with rows of numbers, and SVG charts with a
// non-zero rendered size.
func assertReportRenders(t *testing.T, path string) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	type pageFacts struct {
		Rows        int       `json:"rows"`
		NumericRows int       `json:"numericRows"`
		Charts      int       `json:"charts"`
		Sized       int       `json:"sized"`
		Bars        int       `json:"bars"`
		WidestBar   float64   `json:"widestBar"`
		ChartSizes  []float64 `json:"chartSizes"`
		Scripts     int       `json:"scripts"`
		External    int       `json:"external"`
	}
	const measure = `(() => {
		const rows = [...document.querySelectorAll('#semantics tbody tr')];
		const numeric = rows.filter(r => [...r.cells].some(c => /^\d+$/.test(c.textContent.trim()) && c.getBoundingClientRect().width > 0));
		const charts = [...document.querySelectorAll('svg.chart')];
		const sizes = charts.map(s => { const b = s.getBoundingClientRect(); return b.width * b.height; });
		const bars = [...document.querySelectorAll('svg.chart rect')].map(r => r.getBoundingClientRect().width);
		return {
			rows: rows.length, numericRows: numeric.length,
			charts: charts.length, sized: sizes.filter(a => a > 0).length, chartSizes: sizes,
			bars: bars.length, widestBar: Math.max(0, ...bars),
			scripts: document.scripts.length,
			external: document.querySelectorAll('link[href], img[src], [src^="http"]').length,
		};
	})()`
	if err := chromedp.Do(ctx,
		chromedp.Navigate("file://"+path),
		chromedp.WaitVisible(chromedp.ID("semantics")),
	); err != nil {
		t.Fatalf("render %s in chromium: %v", path, err)
	}
	page, err := chromedp.Run(ctx, chromedp.Evaluate[pageFacts](measure))
	if err != nil {
		t.Fatalf("measure the rendered report: %v", err)
	}
	t.Logf("rendered report: %+v", page)
	if page.Rows == 0 || page.NumericRows != page.Rows {
		t.Errorf("table renders %d rows, %d with numbers; want every row with numbers", page.Rows, page.NumericRows)
	}
	if page.Charts == 0 || page.Sized != page.Charts {
		t.Errorf("%d charts, %d with a non-zero rendered size (%v)", page.Charts, page.Sized, page.ChartSizes)
	}
	if page.Bars == 0 || page.WidestBar <= 0 {
		t.Errorf("charts draw %d bars, widest %.1fpx; want visible bars", page.Bars, page.WidestBar)
	}
	if page.Scripts != 0 || page.External != 0 {
		t.Errorf("report has %d scripts and %d external resources; want a self-contained page", page.Scripts, page.External)
	}
}
