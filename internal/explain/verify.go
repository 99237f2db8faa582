package explain

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/weir-broker/weir/internal/lab"
)

// Check is one `weir lab` scenario run to test a prediction.
type Check struct {
	Scenario  string
	Layer     Layer
	Predicted Guarantee
	Outcome   *lab.Outcome
	// Contradictions say how the measurement breaks the prediction.
	Contradictions []string
}

// Skipped is a layer the lab cannot reproduce with these settings.
type Skipped struct {
	Layer Layer
	Why   string
}

// planned is a scenario chosen for a layer and what it should show.
type planned struct {
	scenario  string
	layer     Layer
	predicted Guarantee
	cluster   bool
}

// Faults run against each layer: those that make it lose or duplicate.
var (
	producerFaults = []string{"lost acks", "connection drops", "broker killed"}
	clusterFaults  = []string{faultLeaderKilled, faultFollowersLag}
)

// VerifyPlan lists the lab scenarios that run ex's settings, and the
// layers the lab cannot reproduce.
func VerifyPlan(ex *Explanation) (scenarios []string, skipped []Skipped) {
	ps, sk := plan(ex)
	for _, p := range ps {
		scenarios = append(scenarios, p.scenario)
	}
	return scenarios, sk
}

func plan(ex *Explanation) ([]planned, []Skipped) {
	c := &ex.Config.Config
	runnable := runnableScenarios()
	var out []planned
	var skipped []Skipped
	add := func(p planned) {
		if runnable[p.scenario] {
			out = append(out, p)
		}
	}

	// Producer layer: the lab's single durable broker, so only what the
	// producer settings do shows.
	switch {
	case c.Acks != 0 && c.Retries == 0:
		skipped = append(skipped, Skipped{Producer, "the lab's producers retry; retries=0 is not reproduced"})
	case c.Acks != 0 && c.NoRetryInTime():
		skipped = append(skipped, Skipped{Producer, fmt.Sprintf("the lab's producers have no delivery timeout; delivery.timeout.ms=%d is not reproduced", c.DeliveryTimeout)})
	case c.AllowCancel:
		skipped = append(skipped, Skipped{Producer, "the lab's idempotent producer does not cancel records in flight; AllowIdempotentProduceCancellation is not reproduced"})
	default:
		g := ex.layer(Producer).Guarantee
		for _, f := range producerFaults {
			add(planned{scenario: producerScenario(c, f), layer: Producer, predicted: g})
		}
	}

	// Topic layer: the lab's three-node cluster, with the producer's acks
	// and the topic's min.insync.replicas and unclean election. The lab's
	// producer there is not idempotent, so only loss is judged.
	switch mode := labClusterMode(c); {
	case mode == "" && c.ReplicationFactor != 1:
		skipped = append(skipped, Skipped{Topic, fmt.Sprintf("the lab's cluster runs replication.factor=3 with min.insync.replicas 1 or 2 and acks 1 or all; not replication.factor=%d, min.insync.replicas=%d, acks=%s", c.ReplicationFactor, c.MinInsyncReplicas, c.AcksName())})
	case mode == "":
		skipped = append(skipped, Skipped{Topic, "replication.factor=1 loses records with a lost disk, which the lab does not inject; the producer scenarios above run on one broker"})
	default:
		lose := slices.ContainsFunc(ex.Failures, func(r *Rule) bool {
			return r.Harm == Loss && (r.Layer == Topic || r.ID == "acks-1")
		})
		g := AtLeastOnce
		if lose {
			g = None
		}
		for _, f := range clusterFaults {
			add(planned{scenario: "cluster / " + mode + " / " + f, layer: Topic, predicted: g, cluster: true})
		}
	}

	// Consumer layer: the lab's workers, killed mid-batch.
	g := ex.layer(Consumer).Guarantee
	switch {
	case c.Commit == CommitAuto && autoCommitLab(c) == "":
		skipped = append(skipped, Skipped{Consumer, "the Java client's auto-commit in poll() is not reproduced (the lab's auto-commit is franz-go's timer)"})
	case c.Commit == CommitAuto && !c.Dedup:
		// The row whose worker commits as this client does: franz-go's
		// default waits a poll; librdkafka's stored offsets and a greedy
		// kgo commit what was handed over.
		add(planned{scenario: autoCommitLab(c), layer: Consumer, predicted: g})
	case c.Commit == CommitBefore && !c.Dedup:
		add(planned{scenario: "consumer / commit before processing / consumer killed mid-batch", layer: Consumer, predicted: g})
	case c.Commit == CommitAfter && !c.Dedup:
		add(planned{scenario: "consumer / process then commit / consumer killed mid-batch", layer: Consumer, predicted: g})
	case c.Commit == CommitAfter && c.Dedup:
		add(planned{scenario: "consumer / idempotent (dedup store) / consumer killed mid-batch", layer: Consumer, predicted: g})
	case c.Commit == CommitInTransaction && c.ReadCommitted:
		add(planned{scenario: "end to end / consume-transform-produce / worker killed mid-transaction", layer: Consumer, predicted: g})
	default:
		skipped = append(skipped, Skipped{Consumer, fmt.Sprintf("the lab has no worker committing %s with weir.dedup=%v and isolation.level=%s", c.Commit, c.Dedup, isolationName(c.ReadCommitted))})
	}
	return out, skipped
}

func isolationName(readCommitted bool) string {
	if readCommitted {
		return "read_committed"
	}
	return "read_uncommitted"
}

// layer returns the result for l.
func (ex *Explanation) layer(l Layer) LayerResult {
	for _, lr := range ex.Layers {
		if lr.Layer == l {
			return lr
		}
	}
	return LayerResult{Layer: l}
}

// runnableScenarios are the names `weir lab` runs, with and without
// --cluster 3.
func runnableScenarios() map[string]bool {
	out := map[string]bool{}
	for _, cluster := range []int{0, 3} {
		for _, line := range lab.Plan(lab.Config{Cluster: cluster}) {
			if strings.Contains(line, ": pruned: ") {
				continue
			}
			name, _, _ := strings.Cut(line, ": ")
			out[name] = true
		}
	}
	return out
}

// Verify runs the lab scenarios of ex with base's binary, seed and
// record counts, and judges each measurement against the prediction for
// its layer. The error is for a lab that could not run.
func Verify(ctx context.Context, ex *Explanation, base lab.Config) ([]Check, []Skipped, error) {
	ps, skipped := plan(ex)
	var checks []Check
	for _, cluster := range []bool{false, true} {
		var names []string
		byName := map[string]planned{}
		for _, p := range ps {
			if p.cluster == cluster {
				names = append(names, p.scenario)
				byName[p.scenario] = p
			}
		}
		if len(names) == 0 {
			continue
		}
		cfg := base
		cfg.Only, cfg.Cluster = names, 0
		if cluster {
			cfg.Cluster = 3
		}
		rep, err := lab.Run(ctx, cfg)
		if err != nil {
			return checks, skipped, err
		}
		for _, o := range rep.Outcomes {
			p, ok := byName[o.Name()]
			if !ok {
				continue // a longer name containing one asked for
			}
			checks = append(checks, judge(p, o))
		}
	}
	return checks, skipped, nil
}

// judge compares one measurement with the prediction for its layer,
// using the lab's own checker: a measurement contradicts a prediction
// when it shows what the predicted guarantee rules out.
func judge(p planned, o *lab.Outcome) Check {
	ch := Check{Scenario: p.scenario, Layer: p.layer, Predicted: p.predicted, Outcome: o}
	switch {
	case o.NotRun != "":
	case o.Err != "":
		ch.Contradictions = []string{"did not run to the end: " + o.Err}
	default:
		ch.Contradictions = o.Result.Violations(lab.Guarantee(p.predicted))
	}
	return ch
}
