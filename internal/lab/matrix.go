package lab

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// matrix is the semantics table of one side: configurations down, faults
// across, lost / duplicated in each cell.
type matrix struct {
	Side   string
	Faults []string
	Rows   []matrixRow
}

type matrixRow struct {
	Config, Claim string
	Cells         []matrixCell
}

type matrixCell struct {
	Text, Class string
}

// matrices groups the outcomes by side, keeping report order.
func matrices(r *Report) []matrix {
	var out []matrix
	index := map[string]int{}
	for _, o := range r.Outcomes {
		i, ok := index[o.Side]
		if !ok {
			i = len(out)
			index[o.Side] = i
			out = append(out, matrix{Side: o.Side})
		}
		m := &out[i]
		if !contains(m.Faults, o.Fault) {
			m.Faults = append(m.Faults, o.Fault)
		}
	}
	for i := range out {
		m := &out[i]
		rows := map[string]*matrixRow{}
		var order []string
		cells := map[[2]string]matrixCell{}
		for _, o := range r.Outcomes {
			if o.Side != m.Side {
				continue
			}
			if rows[o.Config] == nil {
				rows[o.Config] = &matrixRow{Config: o.Config, Claim: o.Claim}
				order = append(order, o.Config)
			}
			cells[[2]string{o.Config, o.Fault}] = cellOf(o)
		}
		for _, c := range order {
			row := rows[c]
			for _, f := range m.Faults {
				cell, ok := cells[[2]string{c, f}]
				if !ok {
					cell = matrixCell{Text: "", Class: "na"}
				}
				row.Cells = append(row.Cells, cell)
			}
			m.Rows = append(m.Rows, *row)
		}
	}
	return out
}

func cellOf(o *Outcome) matrixCell {
	switch {
	case o.NotRun != "":
		return matrixCell{Text: "not run", Class: "na"}
	case o.Err != "":
		return matrixCell{Text: "error", Class: "bad"}
	}
	c := matrixCell{Text: fmt.Sprintf("%d / %d", o.Lost, o.Duplicated), Class: "ok"}
	if o.RCViolations > 0 {
		c.Text += fmt.Sprintf(" / rc %d", o.RCViolations)
	}
	if o.Side == sideCluster && o.Sent > o.Acked {
		// The broker layer trades loss for availability: writes never
		// acknowledged are the other half of the row.
		c.Text += fmt.Sprintf(" / failed %d", o.Sent-o.Acked)
	}
	switch {
	case len(o.Violations) > 0:
		c.Class = "bad"
	case o.Guarantee == NoGuarantee:
		c.Class = ""
	}
	return c
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// WriteMatrix prints the semantics matrices: for each side,
// configurations down, faults across, "lost / duplicated" in each cell
// and a "!" where the claimed guarantee broke.
func WriteMatrix(w io.Writer, r *Report) error {
	for _, m := range matrices(r) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tguarantee\t%s\t\n", strings.ToUpper(m.Side), strings.Join(m.Faults, "\t"))
		for _, row := range m.Rows {
			fmt.Fprintf(tw, "%s\t%s", row.Config, row.Claim)
			for _, c := range row.Cells {
				text := c.Text
				if c.Class == "bad" {
					text += " !"
				}
				fmt.Fprintf(tw, "\t%s", text)
			}
			fmt.Fprintln(tw, "\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	return nil
}
