package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newGroupResetOffsetsCommand(conn *connFlags) *cobra.Command {
	var (
		topic     string
		partition int32
		to        string
		dryRun    bool
	)
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic TOPIC --to start|end|OFFSET|@MS",
		Short: "Set a group's committed offsets for a topic",
		Long: `Set the committed offsets of GROUP for every partition of --topic (or only
--partition) to the log start, the high watermark, an exact offset (kept
within the partition's start and high watermark), or the first offset at
or after a Unix time in milliseconds. The group must have no members: stop
its consumers first. --dry-run prints the change without making it.`,
		Args: exactArgs(1, "one GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := parseFrom(to)
			if err != nil {
				return fmt.Errorf("invalid --to %q: want start, end, an offset or @ and a Unix time in ms", to)
			}
			if topic == "" {
				return fmt.Errorf("--topic is required")
			}
			adm, err := conn.admin()
			if err != nil {
				return err
			}
			defer adm.Close()
			group, ctx := args[0], cmd.Context()
			plan, err := planReset(ctx, adm, group, topic, partition, target)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tOLD\tNEW")
			for _, r := range plan {
				old := "-"
				if r.old >= 0 {
					old = strconv.FormatInt(r.old, 10)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", topic, r.partition, old, r.new)
			}
			tw.Flush()
			if dryRun {
				return nil
			}
			return commitReset(ctx, adm, group, topic, plan)
		},
	}
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "", "the topic whose offsets to reset (required)")
	f.Int32Var(&partition, "partition", -1, "reset only this partition (-1: all)")
	f.StringVar(&to, "to", "", "start, end, an offset, or @ and a Unix time in ms (required)")
	f.BoolVar(&dryRun, "dry-run", false, "print the new offsets without committing them")
	return cmd
}

// resetRow is one partition's committed offset before and after.
type resetRow struct {
	partition int32
	old, new  int64
}

func planReset(ctx context.Context, adm *kadm.Client, group, topic string, partition int32, target startSpec) ([]resetRow, error) {
	topics, err := adm.ListTopicsWithInternal(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("look up topic %s: %w", topic, err)
	}
	t, ok := topics[topic]
	switch {
	case !ok:
		return nil, fmt.Errorf("topic %s: not in the metadata response", topic)
	case t.Err != nil:
		return nil, fmt.Errorf("topic %s: %w", topic, t.Err)
	}
	if _, ok := t.Partitions[partition]; partition >= 0 && !ok {
		return nil, fmt.Errorf("topic %s has no partition %d", topic, partition)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	var after kadm.ListedOffsets
	if target.kind == fromTimestamp {
		if after, err = adm.ListOffsetsAfterMilli(ctx, target.n, topic); err != nil {
			return nil, fmt.Errorf("list offsets of %s after %d: %w", topic, target.n, err)
		}
	}
	committed, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	var plan []resetRow
	var lookupErr error
	ends.Each(func(end kadm.ListedOffset) {
		if end.Topic != topic || (partition >= 0 && end.Partition != partition) {
			return
		}
		start, ok := starts.Lookup(topic, end.Partition)
		if err := firstNonNil(end.Err, start.Err); err != nil || !ok {
			lookupErr = fmt.Errorf("offsets of %s[%d]: %v", topic, end.Partition, err)
			return
		}
		r := resetRow{partition: end.Partition, old: -1}
		if c, ok := committed.Lookup(topic, end.Partition); ok && c.Err == nil {
			r.old = c.At
		}
		switch target.kind {
		case fromStart:
			r.new = start.Offset
		case fromEnd:
			r.new = end.Offset
		case fromOffset:
			r.new = min(max(target.n, start.Offset), end.Offset)
		case fromTimestamp:
			r.new = end.Offset
			if a, ok := after.Lookup(topic, end.Partition); ok && a.Err == nil && a.Offset >= 0 {
				r.new = a.Offset
			}
		}
		plan = append(plan, r)
	})
	if lookupErr != nil {
		return nil, lookupErr
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i].partition < plan[j].partition })
	return plan, nil
}

// commitReset commits the plan as an offset-only commit (generation -1),
// which the coordinator accepts only from outside a group with members.
func commitReset(ctx context.Context, adm *kadm.Client, group, topic string, plan []resetRow) error {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe group %s: %w", group, err)
	}
	if d, ok := described[group]; ok && d.Err == nil && len(d.Members) > 0 {
		return fmt.Errorf("group %s has %d member(s) (state %s): stop its consumers before resetting its offsets", group, len(d.Members), d.State)
	}
	var offs kadm.Offsets
	for _, r := range plan {
		offs.Add(kadm.Offset{Topic: topic, Partition: r.partition, At: r.new, LeaderEpoch: -1})
	}
	resps, err := adm.CommitOffsets(ctx, group, offs)
	if err != nil {
		return fmt.Errorf("commit offsets of group %s: %w", group, err)
	}
	if err := resps.Error(); err != nil {
		return fmt.Errorf("commit offsets of group %s: %w", group, err)
	}
	return nil
}

func firstNonNil(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
