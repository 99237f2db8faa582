package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newGroupDescribeCommand(conn *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP...",
		Short: "Show a group's state, members, committed offsets and lag per partition",
		Long: `Show a group's state, members, and for every partition it has committed
or been assigned: the committed offset, the high watermark and the lag
between them (records not yet consumed).`,
		Args: minArgs(1, "at least one GROUP"),
		RunE: conn.withAdmin(func(cmd *cobra.Command, args []string, adm *kadm.Client) error {
			lags, err := adm.Lag(cmd.Context(), args...)
			if err != nil {
				return fmt.Errorf("describe groups: %w", err)
			}
			var failures []string
			out := cmd.OutOrStdout()
			for i, name := range args {
				if i > 0 {
					fmt.Fprintln(out)
				}
				l, ok := lags[name]
				switch {
				case !ok:
					failures = append(failures, name+": not in the response")
				case l.Error() != nil:
					failures = append(failures, fmt.Sprintf("%s: %v", name, l.Error()))
				case l.State == "Dead":
					failures = append(failures, name+": no such group")
				default:
					printGroupLag(out, l)
				}
			}
			return summarizeGroups("describe", len(args), failures)
		}),
	}
}

func printGroupLag(w io.Writer, l kadm.DescribedGroupLag) {
	fmt.Fprintf(w, "group: %s\nstate: %s\n", l.Group, l.State)
	if l.ProtocolType != "" {
		fmt.Fprintf(w, "protocol: %s/%s\n", l.ProtocolType, orDash(l.Protocol))
	}
	fmt.Fprintf(w, "members: %d\n", len(l.Members))
	if len(l.Members) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tINSTANCE\tCLIENT-ID\tHOST\tASSIGNED")
		for _, m := range l.Members {
			inst := "-"
			if m.InstanceID != nil {
				inst = *m.InstanceID
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.MemberID, inst, orDash(m.ClientID), orDash(m.ClientHost), assigned(m))
		}
		tw.Flush()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tHIGH-WATERMARK\tLAG\tMEMBER\tERROR")
	var total int64
	for _, p := range l.Lag.Sorted() {
		committed, lag := "-", "-"
		if p.Commit.At >= 0 {
			committed = strconv.FormatInt(p.Commit.At, 10)
		}
		if p.Lag >= 0 {
			lag = strconv.FormatInt(p.Lag, 10)
			total += p.Lag
		}
		end := "-"
		if p.End.Err == nil {
			end = strconv.FormatInt(p.End.Offset, 10)
		}
		member := "-"
		if p.Member != nil {
			member = p.Member.MemberID
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, committed, end, lag, member, firstErr(p.Err))
	}
	tw.Flush()
	fmt.Fprintf(w, "total lag: %d\n", total)
}

// assigned lists a consumer member's partitions as topic:p,p topic:p.
func assigned(m kadm.DescribedGroupMember) string {
	c, ok := m.Assigned.AsConsumer()
	if !ok || len(c.Topics) == 0 {
		return "-"
	}
	var parts []string
	for _, t := range c.Topics {
		ps := append([]int32(nil), t.Partitions...)
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		parts = append(parts, t.Topic+":"+joinInt32s(ps))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
