package explain

import (
	"context"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/lab"
	"github.com/weir-broker/weir/internal/testsvc"
)

var (
	buildOnce sync.Once
	weirBin   string
	buildErr  error
)

// weirBinary builds the weir binary the lab runs as broker and workers,
// once, for the tests that measure.
func weirBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "weir-explain-bin")
		if err != nil {
			buildErr = err
			return
		}
		weirBin, buildErr = testsvc.Build(dir, testsvc.WeirPackage)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return weirBin
}

// --verify agrees with `weir lab` on every configuration of the table:
// each scenario --verify would run for a configuration is run by the
// lab, and its measurement does not contradict the prediction for its
// layer. A scenario is run once for all the configurations that plan it.
// Scenarios every configuration predicts "none" for are not run: no
// measurement can contradict that prediction.
func TestVerifyAgreesWithTheLabOnEveryConfigurationOfTheTable(t *testing.T) {
	type use struct {
		config string
		p      planned
	}
	uses := map[string][]use{}
	contradictable := map[string]bool{}
	cluster := map[string]bool{}
	for _, tc := range classifications {
		ex, err := Explain(Input{Client: tc.client, Producer: props(tc.producer), Consumer: props(tc.consumer), Topic: props(tc.topic)})
		if err != nil {
			t.Fatal(err)
		}
		ps, _ := plan(ex)
		if len(ps) == 0 {
			t.Errorf("%s: --verify plans no scenario", tc.name)
		}
		for _, p := range ps {
			uses[p.scenario] = append(uses[p.scenario], use{tc.name, p})
			cluster[p.scenario] = p.cluster
			if p.predicted != None {
				contradictable[p.scenario] = true
			}
		}
	}
	bin := weirBinary(t)
	outcomes := map[string]*lab.Outcome{}
	for _, onCluster := range []bool{false, true} {
		var only []string
		for s := range contradictable {
			if cluster[s] == onCluster {
				only = append(only, s)
			}
		}
		if len(only) == 0 {
			continue
		}
		sort.Strings(only)
		cfg := lab.Config{Exe: bin, Seed: 1, Records: 200, ConsumerRecords: 200, Only: only, ScenarioTimeout: 90 * time.Second}
		if onCluster {
			cfg.Cluster = 3
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		rep, err := lab.Run(ctx, cfg)
		cancel()
		if err != nil {
			t.Fatalf("weir lab --only %q: %v", only, err)
		}
		for _, o := range rep.Outcomes {
			outcomes[o.Name()] = o
		}
	}
	checked := 0
	for s := range contradictable {
		o := outcomes[s]
		if o == nil {
			t.Errorf("weir lab ran no %q", s)
			continue
		}
		if o.NotRun != "" {
			t.Errorf("%q not run: %s", s, o.NotRun)
			continue
		}
		for _, u := range uses[s] {
			checked++
			if ch := judge(u.p, o); len(ch.Contradictions) > 0 {
				t.Errorf("%s: %q predicted %s for the %s layer; measured lost %d, duplicated %d: %v",
					u.config, s, u.p.predicted, u.p.layer, o.Lost, o.Duplicated, ch.Contradictions)
			}
		}
	}
	t.Logf("%d scenarios run, %d predictions of %d configurations checked against them", len(contradictable), checked, len(classifications))
}
