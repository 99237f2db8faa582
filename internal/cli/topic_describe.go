package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTopicDescribeCommand(conn *connFlags) *cobra.Command {
	var filter partitionFilter
	cmd := &cobra.Command{
		Use:   "describe [NAME...]",
		Short: "Show partitions, leaders, replicas, ISR, offsets and configs of topics",
		Long: `Show each partition's leader, leader epoch, replicas, ISR, offline
replicas (on fenced or unregistered brokers), log start and high
watermark, and the topic's configs.

With --under-replicated, --under-min-isr-partitions or
--unavailable-partitions (kafka-topics.sh's filters), list only the
partitions of the named topics, or of every topic when none is named,
that are short of in-sync replicas, short of min.insync.replicas, or
without a live leader.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if filter.active() {
				return nil
			}
			return minArgs(1, "at least one topic NAME (or a filter such as --under-replicated)")(cmd, args)
		},
		RunE: conn.withAdmin(func(cmd *cobra.Command, args []string, adm *kadm.Client) error {
			if filter.active() {
				return describeFiltered(cmd.Context(), cmd.OutOrStdout(), adm, args, filter)
			}
			d, err := describeTopics(cmd.Context(), adm, args)
			if err != nil {
				return err
			}
			var failures []string
			out := cmd.OutOrStdout()
			for i, name := range args {
				if i > 0 {
					fmt.Fprintln(out)
				}
				if err := d.print(out, name); err != nil {
					failures = append(failures, fmt.Sprintf("%s: %v", name, err))
				}
			}
			return summarize("describe", len(args), failures)
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&filter.underReplicated, "under-replicated", false, "list only partitions with fewer in-sync replicas than replicas")
	f.BoolVar(&filter.underReplicated, "under-replicated-partitions", false, "the same as --under-replicated (kafka-topics.sh's name)")
	f.BoolVar(&filter.underMinISR, "under-min-isr-partitions", false, "list only partitions with fewer in-sync replicas than min.insync.replicas")
	f.BoolVar(&filter.unavailable, "unavailable-partitions", false, "list only partitions without a live leader")
	return cmd
}

// describeFiltered prints the partitions of names (every topic when
// none) that filter selects, one table for all topics.
func describeFiltered(ctx context.Context, w io.Writer, adm *kadm.Client, names []string, filter partitionFilter) error {
	topics, err := adm.ListTopicsWithInternal(ctx, names...)
	if err != nil {
		return fmt.Errorf("describe topics: %w", err)
	}
	var failures, existing []string
	for _, name := range topics.Names() {
		if t := topics[name]; t.Err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", name, t.Err))
		} else {
			existing = append(existing, name)
		}
	}
	for _, name := range names {
		if _, ok := topics[name]; !ok {
			failures = append(failures, fmt.Sprintf("%s: not in the metadata response", name))
		}
	}
	var configs kadm.ResourceConfigs
	if len(existing) > 0 {
		if configs, err = adm.DescribeTopicConfigs(ctx, existing...); err != nil && filter.underMinISR {
			return fmt.Errorf("describe topic configs (for min.insync.replicas): %w", err)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rows := 0
	for _, name := range existing {
		minISR := minISROf(configs, name)
		for _, p := range topics[name].Partitions.Sorted() {
			h := healthOf(p.Leader, p.Replicas, p.ISR, minISR)
			if !filter.matches(h) {
				continue
			}
			if rows == 0 {
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tOFFLINE\tMIN-ISR\tSTATE")
			}
			rows++
			minText := "-"
			if minISR > 0 {
				minText = strconv.Itoa(minISR)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", name, p.Partition, p.Leader, p.LeaderEpoch,
				joinInt32s(p.Replicas), joinInt32s(p.ISR), joinInt32s(p.OfflineReplicas), minText, h)
		}
	}
	tw.Flush()
	if rows == 0 {
		fmt.Fprintf(w, "no %s partitions\n", filter)
	}
	if filter.underMinISR {
		for _, name := range existing {
			if minISROf(configs, name) == 0 {
				failures = append(failures, fmt.Sprintf("%s: min.insync.replicas unknown (its configs did not load)", name))
			}
		}
	}
	return summarize("describe", max(len(names), len(existing)), failures)
}

// topicDescription is everything `topic describe` prints, fetched up front
// in four requests however many topics are named.
type topicDescription struct {
	topics  kadm.TopicDetails
	configs kadm.ResourceConfigs
	starts  kadm.ListedOffsets
	ends    kadm.ListedOffsets
}

func describeTopics(ctx context.Context, adm *kadm.Client, names []string) (topicDescription, error) {
	var d topicDescription
	var err error
	if d.topics, err = adm.ListTopicsWithInternal(ctx, names...); err != nil {
		return d, fmt.Errorf("describe topics: %w", err)
	}
	var existing []string
	for _, name := range names {
		if t, ok := d.topics[name]; ok && t.Err == nil {
			existing = append(existing, name)
		}
	}
	if len(existing) == 0 {
		return d, nil
	}
	// Configs and offsets may fail for some topics only; what did load
	// is still worth printing, so these errors are shown per topic.
	d.configs, _ = adm.DescribeTopicConfigs(ctx, existing...)
	d.starts, _ = adm.ListStartOffsets(ctx, existing...)
	d.ends, _ = adm.ListEndOffsets(ctx, existing...)
	return d, nil
}

func (d topicDescription) print(w io.Writer, name string) error {
	t, ok := d.topics[name]
	if !ok {
		return fmt.Errorf("not in the metadata response")
	}
	if t.Err != nil {
		return t.Err
	}
	fmt.Fprintf(w, "topic: %s\n", name)
	if t.ID != (kadm.TopicID{}) {
		fmt.Fprintf(w, "id: %s\n", t.ID)
	}
	fmt.Fprintf(w, "partitions: %d\nreplication factor: %d\n", len(t.Partitions), t.Partitions.NumReplicas())

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tOFFLINE\tLOG-START\tHIGH-WATERMARK\tERROR")
	for _, p := range t.Partitions.Sorted() {
		start, startErr := listedOffset(d.starts, name, p.Partition)
		end, endErr := listedOffset(d.ends, name, p.Partition)
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n",
			p.Partition, p.Leader, p.LeaderEpoch, joinInt32s(p.Replicas), joinInt32s(p.ISR),
			joinInt32s(p.OfflineReplicas), start, end, firstErr(p.Err, startErr, endErr))
	}
	tw.Flush()

	rc, err := d.configs.On(name, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		fmt.Fprintf(w, "configs: unavailable: %v\n", err)
		return nil
	}
	fmt.Fprintln(w, "configs:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	cfgs := slices.SortedFunc(slices.Values(rc.Configs), func(a, b kadm.Config) int { return strings.Compare(a.Key, b.Key) })
	for _, c := range cfgs {
		v := c.MaybeValue()
		if c.Sensitive {
			v = "(sensitive)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Key, v, c.Source)
	}
	tw.Flush()
	return nil
}

// listedOffset returns the offset of topic/partition in l as text, or "-"
// and the reason it is missing.
func listedOffset(l kadm.ListedOffsets, topic string, partition int32) (string, error) {
	o, ok := l.Lookup(topic, partition)
	switch {
	case !ok:
		return "-", nil
	case o.Err != nil:
		return "-", o.Err
	}
	return strconv.FormatInt(o.Offset, 10), nil
}

func firstErr(errs ...error) string {
	for _, err := range errs {
		if err != nil {
			return err.Error()
		}
	}
	return "-"
}

func joinInt32s(ns []int32) string {
	if len(ns) == 0 {
		return "-"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(int(n))
	}
	return strings.Join(s, ",")
}
