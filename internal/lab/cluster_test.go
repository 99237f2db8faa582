package lab

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestClusterLabJudgesEachRowByWhatItClaims runs a small `weir lab
// --cluster 3`: the row that claims no acknowledged record is lost (acks=all,
// min.insync.replicas=2, unclean election off) must hold under a leader
// kill and under two lost nodes; the rows that claim nothing (acks=1, and
// unclean election on) are reported as measured, with their loss and the
// writes never acknowledged, whatever those turn out to be.
func TestClusterLabJudgesEachRowByWhatItClaims(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.html")
	out, code := runLabWithin(t, 150*time.Second, "--cluster", "3", "--seed", "5", "--report", report, "--only",
		"acks=all min.insync=2 unclean=off / leader killed,acks=1 min.insync=1 unclean=off / leader killed,"+
			"acks=all min.insync=2 unclean=off / two nodes lost,acks=all min.insync=1 unclean=on / followers lag,"+
			// Matches only pruned combinations: they are listed, not run.
			"unclean=on / leader killed")
	if code != 0 {
		t.Fatalf("weir lab --cluster 3 exited %d:\n%s", code, out)
	}
	for _, fault := range []string{"leader killed", "two nodes lost"} {
		row := strings.Join(tableRow(t, out, "acks=all min.insync=2 unclean=off", fault), " ")
		if !strings.Contains(row, "at-least-once") || !strings.HasSuffix(row, "holds") {
			t.Errorf("acks=all min.insync=2 unclean=off / %s: %q; want it to claim at-least-once and hold", fault, row)
		}
	}
	// The rows that claim nothing are measured, not judged: their
	// guarantee column says none and their verdict says measured, with
	// the counts in place (lost and never acknowledged may be anything).
	for _, r := range []struct{ config, fault string }{
		{"acks=1 min.insync=1 unclean=off", "leader killed"},
		{"acks=all min.insync=1 unclean=on", "followers lag"},
	} {
		row := strings.Join(tableRow(t, out, r.config, r.fault), " ")
		if !regexp.MustCompile(`\snone\s+\d+\s+\d+\s+\d+\s+\d+\s.*measured$`).MatchString(row) {
			t.Errorf("%s / %s: %q; want guarantee none, its counts and the verdict measured", r.config, r.fault, row)
		}
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(r.config+" / "+r.fault) + `[^:]*: \d+ of \d+ never acknowledged.*; stall \d+\.\ds$`).MatchString(out) {
			t.Errorf("no availability line for %s / %s:\n%s", r.config, r.fault, out)
		}
	}
	// Combinations that would repeat a row are named, with the reason.
	if !strings.Contains(out, "[ 4/4]") {
		t.Errorf("want the four rows run and the pruned combinations not:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^pruned \(\d+ combinations\): unclean election acts only when no in-sync replica is left`).MatchString(out) ||
		!strings.Contains(out, "  cluster / acks=1 min.insync=1 unclean=on / leader killed\n") {
		t.Errorf("the pruned combinations are not listed:\n%s", out)
	}
	assertReportRenders(t, report)
}

// TestClusterMatrixCoversEveryCombinationOnce checks the broker layer's
// plan: each of acks 1 and all × min.insync.replicas 1 and 2 × unclean
// off and on × the four faults is either run or pruned with a reason,
// never both, and the rows that claim a guarantee are all run.
func TestClusterMatrixCoversEveryCombinationOnce(t *testing.T) {
	run, pruned := clusterScenarios(&Config{Cluster: 3})
	seen := map[string]int{}
	for _, s := range run {
		seen[s.name()]++
		if s.guarantee != NoGuarantee && !strings.Contains(s.config, "acks=all min.insync=2 unclean=off") {
			t.Errorf("%s claims %v", s.name(), s.guarantee)
		}
	}
	for _, p := range pruned {
		seen[p.Name]++
		if p.Why == "" {
			t.Errorf("%s pruned without a reason", p.Name)
		}
		if strings.Contains(p.Name, "acks=all min.insync=2 unclean=off") {
			t.Errorf("%s claims a guarantee and is pruned", p.Name)
		}
	}
	if want := 2 * 2 * 2 * len(clusterFaults); len(seen) != want {
		t.Errorf("%d combinations covered, want %d", len(seen), want)
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s appears %d times", name, n)
		}
	}
	if len(run) > 14 {
		t.Errorf("%d rows run; the matrix is meant to take a few minutes", len(run))
	}
}
