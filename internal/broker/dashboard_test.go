package broker

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/metrics"
)

// The Grafana dashboard checked in (dashboards/weir.json) queries only
// metrics Weir exports: every weir_ name in its expressions is one the
// server's metrics or the broker's collector defines (a histogram's
// _bucket, _sum and _count series included).
func TestDashboardQueriesOnlyMetricsWeirExports(t *testing.T) {
	raw, err := os.ReadFile("../../dashboards/weir.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	known := slices.Clone(metricNames)
	m := metrics.New()
	// A labelled counter is gathered once it has a series: one answer
	// with an error code makes the errors counter's.
	hb := kmsg.NewPtrHeartbeatResponse()
	hb.ErrorCode = kerr.RebalanceInProgress.Code
	m.Errors(12, false, hb)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		known = append(known, f.GetName())
	}
	name := regexp.MustCompile(`\bweir_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				queried++
				base := n
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suffix)
				}
				if !slices.Contains(known, n) && !slices.Contains(known, base) {
					t.Errorf("panel %q queries %s, which Weir does not export", p.Title, n)
				}
			}
		}
	}
	if queried == 0 {
		t.Fatal("the dashboard queries no weir_ metric")
	}
}
