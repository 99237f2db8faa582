package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/weir-broker/weir/internal/brokererr"
)

// newTopicCommand returns `weir topic` and its subcommands.
func newTopicCommand(conn *connFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter, reassign and delete topics",
	}
	subs := []*cobra.Command{
		newTopicCreateCommand(conn),
		newTopicListCommand(conn),
		newTopicDescribeCommand(conn),
		newTopicAlterCommand(conn),
		newTopicReassignCommand(conn),
		newTopicDeleteCommand(conn),
	}
	cmd.AddCommand(subs...)
	silence(append(subs, cmd)...)
	return cmd
}

func newTopicCreateCommand(conn *connFlags) *cobra.Command {
	var (
		partitions        int32
		replicationFactor int16
		configs           []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Args:  exactArgs(1, "one topic NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parseConfigs(configs)
			if err != nil {
				return err
			}
			adm, err := conn.admin()
			if err != nil {
				return err
			}
			defer adm.Close()
			name := args[0]
			resp, err := adm.CreateTopic(cmd.Context(), partitions, replicationFactor, cfg, name)
			if err != nil {
				return fmt.Errorf("create topic %q: %w", name, brokererr.WithMessage(err, resp.ErrMessage))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created topic %s (%d partitions, replication factor %d)\n",
				name, resp.NumPartitions, resp.ReplicationFactor)
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32Var(&partitions, "partitions", -1, "number of partitions (-1: broker default)")
	f.Int16Var(&replicationFactor, "replication-factor", -1, "replicas per partition (-1: broker default)")
	f.StringArrayVar(&configs, "config", nil, "topic config key=value (repeatable)")
	return cmd
}

func newTopicListCommand(conn *connFlags) *cobra.Command {
	var internal bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topic names, one per line",
		Args:  exactArgs(0, "no arguments"),
		RunE: conn.withAdmin(func(cmd *cobra.Command, _ []string, adm *kadm.Client) error {
			list := adm.ListTopics
			if internal {
				list = adm.ListTopicsWithInternal
			}
			topics, err := list(cmd.Context())
			if err != nil {
				return fmt.Errorf("list topics: %w", err)
			}
			out := cmd.OutOrStdout()
			for _, name := range topics.Names() {
				fmt.Fprintln(out, name)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&internal, "internal", false, "include internal topics such as __consumer_offsets")
	return cmd
}

func newTopicDeleteCommand(conn *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete topics",
		Args:  minArgs(1, "at least one topic NAME"),
		RunE: conn.withAdmin(func(cmd *cobra.Command, args []string, adm *kadm.Client) error {
			resps, err := adm.DeleteTopics(cmd.Context(), args...)
			if err != nil {
				return fmt.Errorf("delete topics: %w", err)
			}
			var failures []string
			for _, name := range args {
				r, ok := resps[name]
				switch {
				case !ok:
					failures = append(failures, name+": not in the response")
				case r.Err != nil:
					failures = append(failures, fmt.Sprintf("%s: %v", name, brokererr.WithMessage(r.Err, r.ErrMessage)))
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", name)
				}
			}
			return summarize("delete", len(args), failures)
		}),
	}
}

// summarize turns per-topic failures into one error line.
func summarize(verb string, total int, failures []string) error {
	if len(failures) == 0 {
		return nil
	}
	return fmt.Errorf("could not %s %d of %d topic(s): %s", verb, len(failures), total, strings.Join(failures, "; "))
}
