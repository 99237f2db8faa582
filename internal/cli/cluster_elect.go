package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/brokererr"
)

// newClusterElectCommand returns `weir cluster elect`, Kafka's
// kafka-leader-election.sh: ElectLeaders (KIP-183, KIP-460) for the named
// partitions, or for every partition.
func newClusterElectCommand(conn *connFlags) *cobra.Command {
	var preferred, unclean bool
	cmd := &cobra.Command{
		Use:   "elect --preferred|--unclean [TOPIC[:PARTITION]...]",
		Short: "Elect partition leaders: preferred replicas, or live replicas outside a dead ISR",
		Long: `Ask the active controller to elect leaders (ElectLeaders).

--preferred moves a partition's leadership to its preferred replica, the
first of its assignment, if that replica is live and in the ISR.
--unclean gives a partition whose leader is not live a live replica as
leader; when no ISR member is live it takes one outside the ISR, and the
writes only the lost ISR held are gone.

TOPIC elects every partition of the topic, TOPIC:PARTITION one partition;
with none, every partition of the cluster is considered and only those
that needed an election are listed.`,
		RunE: conn.withAdmin(func(cmd *cobra.Command, args []string, adm *kadm.Client) error {
			how, err := electionMode(preferred, unclean)
			if err != nil {
				return err
			}
			targets, err := parseElectTargets(args)
			if err != nil {
				return err
			}
			return runElect(cmd.Context(), cmd.OutOrStdout(), adm, how, targets)
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&preferred, "preferred", false, "elect each partition's preferred replica")
	f.BoolVar(&unclean, "unclean", false, "elect a live replica where the leader is not live, even outside the ISR (may lose acknowledged writes)")
	return cmd
}

// electionMode is the election type the flags ask for: exactly one.
func electionMode(preferred, unclean bool) (kadm.ElectLeadersHow, error) {
	switch {
	case preferred && unclean:
		return 0, errors.New("give either --preferred or --unclean, not both")
	case preferred:
		return kadm.ElectPreferredReplica, nil
	case unclean:
		return kadm.ElectLiveReplica, nil
	}
	return 0, errors.New("give --preferred or --unclean")
}

// electTarget is one TOPIC or TOPIC:PARTITION argument; partition -1 is
// every partition of the topic.
type electTarget struct {
	topic     string
	partition int32
}

// parseElectTargets parses TOPIC[:PARTITION] arguments. A topic name
// cannot hold ':' (only [a-zA-Z0-9._-]), so the last ':' splits.
func parseElectTargets(args []string) ([]electTarget, error) {
	var out []electTarget
	for _, a := range args {
		topic, part, hasPart := strings.Cut(a, ":")
		if topic == "" {
			return nil, fmt.Errorf("%q: want TOPIC or TOPIC:PARTITION", a)
		}
		t := electTarget{topic: topic, partition: -1}
		if hasPart {
			p, err := strconv.ParseInt(part, 10, 32)
			if err != nil || p < 0 {
				return nil, fmt.Errorf("%q: partition %q is not a partition number (want TOPIC:PARTITION, e.g. orders:0)", a, part)
			}
			t.partition = int32(p)
		}
		out = append(out, t)
	}
	return out, nil
}

// runElect sends the elections and prints one line per partition
// answered. It fails when an election the user named could not be made;
// a partition whose leader is already the one asked for is not a failure.
func runElect(ctx context.Context, w io.Writer, adm *kadm.Client, how kadm.ElectLeadersHow, targets []electTarget) error {
	var set kadm.TopicsSet // nil: every partition
	if len(targets) > 0 {
		set = make(kadm.TopicsSet)
		var whole []string
		for _, t := range targets {
			if t.partition < 0 {
				whole = append(whole, t.topic)
			} else {
				set.Add(t.topic, t.partition)
			}
		}
		if len(whole) > 0 {
			details, err := adm.ListTopicsWithInternal(ctx, whole...)
			if err != nil {
				return fmt.Errorf("list partitions: %w", err)
			}
			for _, name := range whole {
				d, ok := details[name]
				if !ok || d.Err != nil {
					err := error(kerr.UnknownTopicOrPartition)
					if ok {
						err = d.Err
					}
					return fmt.Errorf("topic %q: %w", name, err)
				}
				for p := range d.Partitions {
					set.Add(name, p)
				}
			}
		}
	}
	results, err := adm.ElectLeaders(ctx, how, set)
	if err != nil {
		return fmt.Errorf("elect leaders: %w", err)
	}
	var rows []kadm.ElectLeadersResult
	var names []string
	for name, ps := range results {
		names = append(names, name)
		for _, r := range ps {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b kadm.ElectLeadersResult) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	if len(rows) == 0 {
		fmt.Fprintln(w, "no partition needed an election")
		return nil
	}
	// The answer names no leaders; the metadata after it does.
	leaders := map[string]map[int32]int32{}
	if details, err := adm.ListTopicsWithInternal(ctx, names...); err == nil {
		for name, d := range details {
			leaders[name] = map[int32]int32{}
			for p, pd := range d.Partitions {
				leaders[name][p] = pd.Leader
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tRESULT")
	var failures []string
	for _, r := range rows {
		result := "elected"
		switch {
		case errors.Is(r.Err, kerr.ElectionNotNeeded):
			result = "not needed: " + orDash(r.ErrMessage)
		case r.Err != nil:
			result = brokererr.WithMessage(r.Err, r.ErrMessage).Error()
			failures = append(failures, fmt.Sprintf("%s:%d", r.Topic, r.Partition))
		}
		leader := "-"
		if l, ok := leaders[r.Topic][r.Partition]; ok {
			leader = strconv.Itoa(int(l))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Topic, r.Partition, leader, result)
	}
	tw.Flush()
	if len(failures) > 0 {
		return fmt.Errorf("no leader elected for %d of %d partition(s): %s", len(failures), len(rows), strings.Join(failures, ", "))
	}
	return nil
}
