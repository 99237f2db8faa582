package lab

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the semantics table: one row per scenario, with the
// measured counts and the verdict against the claimed guarantee.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tconfiguration\tfault\tguarantee\tsent\tacked\tdelivered\tlost\tdup\treordered\trc-viol\trec/s\tp99 ms\tverdict\t")
	for _, o := range r.Outcomes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t", o.Side, o.Config, o.Fault, o.Claim)
		switch {
		case o.NotRun != "":
			fmt.Fprintf(tw, "\t\t\t\t\t\t\t\t\tnot run\t\n")
			continue
		case o.Err != "":
			fmt.Fprintf(tw, "\t\t\t\t\t\t\t\t\tERROR\t\n")
			continue
		}
		p99 := "-"
		if o.P99 > 0 {
			p99 = fmt.Sprintf("%.1f", float64(o.P99.Microseconds())/1000)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%s\t%s\t\n",
			o.Sent, o.Acked, o.Delivered, o.Lost, o.Duplicated, o.Reordered, o.RCViolations, o.Throughput, p99, verdict(o))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	reasons := map[string]int{}
	var order []string
	for _, o := range r.Outcomes {
		if o.NotRun != "" {
			if reasons[o.NotRun] == 0 {
				order = append(order, o.NotRun)
			}
			reasons[o.NotRun]++
		}
	}
	for _, why := range order {
		fmt.Fprintf(w, "not run (%d scenarios): %s\n", reasons[why], why)
	}
	writeAvailability(w, r)
	writePruned(w, r)
	for _, o := range r.Outcomes {
		if o.Err != "" {
			fmt.Fprintf(w, "error in %s: %s\n", o.Name(), o.Err)
		}
		if len(o.Violations) > 0 {
			fmt.Fprintf(w, "BROKEN %s: claims %s, measured %s\n", o.Name(), o.Claim, strings.Join(o.Violations, ", "))
		}
	}
	return nil
}

// verdict is the short judgement of one scenario.
func verdict(o *Outcome) string {
	switch {
	case o.NotRun != "":
		return "not run"
	case o.Err != "":
		return "error"
	case len(o.Violations) > 0:
		return "BROKEN"
	case o.Guarantee == NoGuarantee:
		return "measured"
	}
	return "holds"
}

// writeAvailability prints, for each broker-layer row, what the fault
// cost in writes: those never acknowledged, the brokers' refusals, the
// longest time without an acknowledgement.
func writeAvailability(w io.Writer, r *Report) {
	first := true
	for _, o := range r.Outcomes {
		if o.Side != sideCluster || o.NotRun != "" || o.Err != "" {
			continue
		}
		if first {
			fmt.Fprintln(w, "\navailability (writes never acknowledged; refusals the brokers answered; longest time without an acknowledgement):")
			first = false
		}
		line := fmt.Sprintf("  %s / %s: %d of %d never acknowledged", o.Config, o.Fault, o.Sent-o.Acked, o.Sent)
		if len(o.Failed) > 0 {
			line += " (" + countsText(o.Failed) + ")"
		}
		if len(o.Refused) > 0 {
			line += "; refused " + countsText(o.Refused)
		}
		line += fmt.Sprintf("; stall %.1fs", o.Stall.Seconds())
		fmt.Fprintln(w, line)
	}
}

// writePruned prints the combinations not run, grouped by reason.
func writePruned(w io.Writer, r *Report) {
	for _, g := range prunedGroups(r.Pruned) {
		fmt.Fprintf(w, "pruned (%d combinations): %s\n", len(g.Names), g.Why)
		for _, n := range g.Names {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}
