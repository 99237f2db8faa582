package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/weir-broker/weir/internal/explain"
)

// guaranteeWords says what a guarantee lets happen.
var guaranteeWords = map[explain.Guarantee]string{
	explain.None:        "records may be lost and may be duplicated",
	explain.AtMostOnce:  "records may be lost, never duplicated",
	explain.AtLeastOnce: "no acknowledged record is lost; duplicates may appear",
	explain.ExactlyOnce: "no record is lost or duplicated",
}

// layerSettings is what decides a layer, as a line of properties.
func layerSettings(c *explain.Config, l explain.Layer) string {
	switch l {
	case explain.Producer:
		txn := ""
		if c.Transactional {
			txn = " transactional.id=(set)"
		}
		return fmt.Sprintf("acks=%s enable.idempotence=%v retries=%d%s", c.AcksName(), c.Idempotent, c.Retries, txn)
	case explain.Topic:
		return fmt.Sprintf("replication.factor=%d min.insync.replicas=%d unclean.leader.election.enable=%v", c.ReplicationFactor, c.MinInsyncReplicas, c.UncleanElection)
	}
	iso := "read_uncommitted"
	if c.ReadCommitted {
		iso = "read_committed"
	}
	return fmt.Sprintf("enable.auto.commit=%v weir.commit=%s weir.dedup=%v isolation.level=%s", c.AutoCommit, c.Commit, c.Dedup, iso)
}

// reassignCommand is the `weir topic reassign` command that gives topic
// rf replicas, with placeholders for what only the operator knows.
func reassignCommand(topic, rf string) string {
	if topic == "" {
		topic = "TOPIC"
	}
	n, _ := strconv.Atoi(rf)
	brokers := make([]string, max(n, 1))
	for i := range brokers {
		brokers[i] = "BROKER"
	}
	return fmt.Sprintf("weir topic reassign --wait %s:PARTITION=%s (once per partition)", topic, strings.Join(brokers, ","))
}

func writeExplanation(w io.Writer, ex *explain.Explanation, topic, topicFrom string, assumed []string) {
	c := &ex.Config.Config
	src := "topic settings assumed"
	if topicFrom != "" {
		src = "topic settings read from " + topicFrom
	}
	if len(assumed) > 0 {
		src += ", --assume " + strings.Join(assumed, ",")
	}
	fmt.Fprintf(w, "%s client defaults; %s\n\n", c.Client, src)
	fmt.Fprintf(w, "guarantee: %s (%s)\n", ex.Guarantee, guaranteeWords[ex.Guarantee])
	if len(ex.Weakest) > 0 {
		var links []string
		for _, l := range ex.Weakest {
			var causes []string
			for _, r := range ex.Failures {
				if r.Layer == l && !contains(causes, r.Cause) {
					causes = append(causes, r.Cause)
				}
			}
			links = append(links, fmt.Sprintf("%s (%s)", l, strings.Join(causes, "; ")))
		}
		word := "weakest link"
		if len(links) > 1 {
			word = "weakest links"
		}
		fmt.Fprintf(w, "%s: %s\n", word, strings.Join(links, ", "))
	}
	fmt.Fprintln(w, "\nby layer:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, lr := range ex.Layers {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", lr.Layer, lr.Guarantee, layerSettings(c, lr.Layer))
	}
	tw.Flush()
	if len(ex.Failures) > 0 {
		fmt.Fprintln(w, "\nwhat breaks a stronger guarantee:")
		for _, r := range ex.Failures {
			fmt.Fprintf(w, "  - %s, %s: %s\n", r.Layer, r.Harm, r.Failure)
			for _, s := range r.Lab(c) {
				fmt.Fprintf(w, "      shown by: weir lab %s--only '%s'\n", clusterFlag(s), s)
			}
			if len(r.Lab(c)) == 0 {
				fmt.Fprintln(w, "      shown by: not shown by the lab (no weir lab scenario injects this failure with these settings)")
			}
			fmt.Fprintf(w, "      source: %s\n", r.Source)
		}
	}
	for _, r := range ex.Absorbed {
		fmt.Fprintf(w, "  - absorbed: %s (the dedup store skips the second copy)\n", r.Failure)
	}
	if ex.HasTarget {
		fmt.Fprintf(w, "\nto reach %s:\n", ex.Target)
		// One line per failure removed, with the settings that remove it.
		for i := 0; i < len(ex.Changes); {
			ch := ex.Changes[i]
			var sets, kgo []string
			for ; i < len(ex.Changes) && ex.Changes[i].Because == ch.Because && ex.Changes[i].Layer == ch.Layer; i++ {
				if s := ex.Changes[i].Setting; s.Layer == explain.Topic && s.Key == "replication.factor" {
					// Not a topic config (Kafka refuses to alter it):
					// replicas change by reassignment (KIP-455).
					fmt.Fprintf(w, "  - topic: raise the replication factor to %s by reassigning each partition to %s brokers (KIP-455; replication.factor is no topic config): %s (against: %s)\n",
						s.Value, s.Value, reassignCommand(topic, s.Value), ch.Because.Cause)
					continue
				}
				sets = append(sets, ex.Changes[i].Setting.String())
				if k := explain.KgoOption(ex.Changes[i].Setting); k != "" {
					kgo = append(kgo, k)
				}
			}
			if len(sets) > 0 {
				where := ""
				if ch.Layer == explain.Topic {
					where = " on the topic"
				}
				fmt.Fprintf(w, "  - %s: set %s%s (against: %s)\n", ch.Layer, strings.Join(sets, ", "), where, ch.Because.Cause)
			}
			if c.Client == explain.FranzGo {
				for _, k := range kgo {
					fmt.Fprintf(w, "      kgo: %s\n", k)
				}
			}
			if ch.Because.Cost != "" {
				fmt.Fprintf(w, "      cost: %s\n", ch.Because.Cost)
			}
		}
		fmt.Fprintf(w, "  apply: %s\n", changeFlags(ex.Changes))
	}
	if len(c.Notes) > 0 || len(ex.Config.Ignored) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range c.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
		if len(ex.Config.Ignored) > 0 {
			fmt.Fprintf(w, "  - no bearing on the guarantee, ignored: %s\n", strings.Join(ex.Config.Ignored, ", "))
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func clusterFlag(scenario string) string {
	if strings.HasPrefix(scenario, "cluster / ") {
		return "--cluster 3 "
	}
	return ""
}

// changeFlags are the `weir explain` flags that apply changes.
func changeFlags(changes []explain.Change) string {
	var parts, assume []string
	for _, ch := range changes {
		switch ch.Layer {
		case explain.Producer:
			parts = append(parts, "--producer-set "+ch.Setting.String())
		case explain.Consumer:
			parts = append(parts, "--consumer-set "+ch.Setting.String())
		default:
			assume = append(assume, ch.Setting.String())
		}
	}
	if len(assume) > 0 {
		parts = append(parts, "--assume "+strings.Join(assume, ","))
	}
	return strings.Join(parts, " ")
}

// writeChecks prints the measurements beside the predictions and reports
// whether any contradicts its prediction.
func writeChecks(w io.Writer, checks []explain.Check, skipped []explain.Skipped) (contradicted bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  scenario\tlayer\tpredicted\tacked\tlost\tdup\tverdict")
	notRun := 0
	for _, ch := range checks {
		o := ch.Outcome
		verdict := "consistent"
		switch {
		case o.NotRun != "":
			verdict = "not run: " + o.NotRun
			notRun++
		case len(ch.Contradictions) > 0:
			verdict = "CONTRADICTED: " + strings.Join(ch.Contradictions, ", ")
			contradicted = true
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\t%s\n", ch.Scenario, ch.Layer, ch.Predicted, o.Acked, o.Lost, o.Duplicated, verdict)
	}
	tw.Flush()
	for _, s := range skipped {
		fmt.Fprintf(w, "  %s layer not verified: %s\n", s.Layer, s.Why)
	}
	// A scenario not run measured nothing: it is counted apart, never
	// among the measurements that agree.
	switch {
	case len(checks) == 0:
		fmt.Fprintln(w, "verify: no lab scenario reproduces these settings")
	case contradicted:
		fmt.Fprintln(w, "verify: the measurement CONTRADICTS the prediction")
	case notRun == len(checks):
		fmt.Fprintf(w, "verify: nothing measured; %s not run\n", count(notRun, "scenario"))
	case notRun > 0:
		fmt.Fprintf(w, "verify: %s consistent with the prediction; %s not run\n", count(len(checks)-notRun, "measurement"), count(notRun, "scenario"))
	default:
		fmt.Fprintf(w, "verify: all %d measurements consistent with the prediction\n", len(checks))
	}
	return contradicted
}

// count is n and noun, plural when n is not 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
