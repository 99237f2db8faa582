package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// newGroupCommand returns `weir group` and its subcommands.
func newGroupCommand(conn *connFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, delete consumer groups and reset their offsets",
	}
	subs := []*cobra.Command{
		newGroupListCommand(conn),
		newGroupDescribeCommand(conn),
		newGroupDeleteCommand(conn),
		newGroupResetOffsetsCommand(conn),
	}
	cmd.AddCommand(subs...)
	silence(append(subs, cmd)...)
	return cmd
}

func newGroupListCommand(conn *connFlags) *cobra.Command {
	var states []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List consumer groups with their state and protocol type",
		Args:  exactArgs(0, "no arguments"),
		RunE: conn.withAdmin(func(cmd *cobra.Command, _ []string, adm *kadm.Client) error {
			groups, err := adm.ListGroups(cmd.Context(), states...)
			if err != nil {
				return fmt.Errorf("list groups: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL-TYPE")
			for _, g := range groups.Sorted() {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Group, g.State, orDash(g.ProtocolType))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().StringArrayVar(&states, "state", nil, "list only groups in this state: Empty, Stable, PreparingRebalance, CompletingRebalance (repeatable)")
	return cmd
}

func newGroupDeleteCommand(conn *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete consumer groups that have no members, with their committed offsets",
		Args:  minArgs(1, "at least one GROUP"),
		RunE: conn.withAdmin(func(cmd *cobra.Command, args []string, adm *kadm.Client) error {
			resps, err := adm.DeleteGroups(cmd.Context(), args...)
			if err != nil {
				return fmt.Errorf("delete groups: %w", err)
			}
			var failures []string
			for _, name := range args {
				r, ok := resps[name]
				switch {
				case !ok:
					failures = append(failures, name+": not in the response")
				case r.Err != nil:
					failures = append(failures, fmt.Sprintf("%s: %v", name, r.Err))
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", name)
				}
			}
			return summarizeGroups("delete", len(args), failures)
		}),
	}
}

// summarizeGroups turns per-group failures into one error line.
func summarizeGroups(verb string, total int, failures []string) error {
	if len(failures) == 0 {
		return nil
	}
	return fmt.Errorf("could not %s %d of %d group(s): %s", verb, len(failures), total, strings.Join(failures, "; "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
