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
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/brokererr"
)

// reassignPollInterval is how often --wait asks whether the moves are done.
const reassignPollInterval = 500 * time.Millisecond

// topicPartition names one partition.
type topicPartition struct {
	topic     string
	partition int32
}

func (tp topicPartition) String() string { return tp.topic + "-" + strconv.Itoa(int(tp.partition)) }

// partitionMove is one parsed TOPIC:PARTITION=BROKER,... argument.
type partitionMove struct {
	topicPartition
	replicas []int32
}

func newTopicReassignCommand(conn *connFlags) *cobra.Command {
	var (
		cancel, list, wait bool
		waitTimeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "reassign TOPIC:PARTITION=BROKER[,BROKER...]...",
		Short: "Move partition replicas between brokers, cancel a move, or list the moves in progress",
		Long: `Move partition replicas to the brokers listed (KIP-455), the first of which is the
preferred leader, while clients keep producing and consuming. A move adds the new
replicas first; once they have caught up and joined the ISR the old ones are removed
and their copies deleted.

  weir topic reassign orders:0=2,3 orders:1=3,1   start two moves
  weir topic reassign --wait orders:0=2,3          and wait until it is done
  weir topic reassign --cancel orders:0            return to the replicas before the move
  weir topic reassign --list [TOPIC...]            list the moves in progress`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case cancel && list:
				return fmt.Errorf("--cancel and --list cannot be combined")
			case list && wait:
				return fmt.Errorf("--wait applies to a move or a cancel, not to --list")
			case list:
				return conn.withAdmin(func(cmd *cobra.Command, args []string, adm *kadm.Client) error {
					return listReassignments(cmd.Context(), cmd.OutOrStdout(), adm, args)
				})(cmd, args)
			case len(args) == 0:
				return fmt.Errorf("%s: want at least one TOPIC:PARTITION=BROKER[,BROKER...] (or --cancel TOPIC:PARTITION, or --list)", cmd.CommandPath())
			}
			var moves []partitionMove
			var err error
			if cancel {
				moves, err = parseCancels(args)
			} else {
				moves, err = parseMoves(args)
			}
			if err != nil {
				return err
			}
			adm, err := conn.admin()
			if err != nil {
				return err
			}
			defer adm.Close()
			ctx := cmd.Context()
			started, err := alterAssignments(ctx, cmd.OutOrStdout(), adm, moves, cancel)
			if err != nil || !wait || len(started) == 0 {
				return err
			}
			if waitTimeout > 0 {
				var stop context.CancelFunc
				ctx, stop = context.WithTimeout(ctx, waitTimeout)
				defer stop()
			}
			return waitReassigned(ctx, cmd.OutOrStdout(), adm, started)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cancel, "cancel", false, "cancel the moves of the TOPIC:PARTITION arguments, returning to their replicas before the move")
	f.BoolVar(&list, "list", false, "list the moves in progress (of the TOPIC arguments, or of every topic)")
	f.BoolVar(&wait, "wait", false, "wait until the moves are done")
	f.DurationVar(&waitTimeout, "wait-timeout", 10*time.Minute, "give up --wait after this long (0: never)")
	return cmd
}

// parseTopicPartition parses TOPIC:PARTITION. Topic names cannot hold
// ':' (Kafka allows only ASCII alphanumerics, '.', '_' and '-').
func parseTopicPartition(s string) (topicPartition, error) {
	topic, part, ok := strings.Cut(s, ":")
	if !ok || topic == "" {
		return topicPartition{}, fmt.Errorf("invalid partition %q: want TOPIC:PARTITION, such as orders:0", s)
	}
	n, err := strconv.ParseInt(part, 10, 32)
	if err != nil || n < 0 {
		return topicPartition{}, fmt.Errorf("invalid partition %q: %q is not a partition number", s, part)
	}
	return topicPartition{topic, int32(n)}, nil
}

// parseMoves parses TOPIC:PARTITION=BROKER,BROKER,... arguments,
// refusing a partition named twice and a broker listed twice.
func parseMoves(args []string) ([]partitionMove, error) {
	var moves []partitionMove
	for _, arg := range args {
		lhs, rhs, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, fmt.Errorf("invalid move %q: want TOPIC:PARTITION=BROKER[,BROKER...], such as orders:0=2,3", arg)
		}
		tp, err := parseTopicPartition(lhs)
		if err != nil {
			return nil, err
		}
		m := partitionMove{topicPartition: tp}
		for b := range strings.SplitSeq(rhs, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(b), 10, 32)
			switch {
			case err != nil || id < 0:
				return nil, fmt.Errorf("invalid move %q: %q is not a broker id", arg, b)
			case slices.Contains(m.replicas, int32(id)):
				return nil, fmt.Errorf("invalid move %q: broker %d is listed twice", arg, id)
			}
			m.replicas = append(m.replicas, int32(id))
		}
		moves = append(moves, m)
	}
	return moves, checkDistinct(moves)
}

// parseCancels parses TOPIC:PARTITION arguments: moves with no replicas,
// which cancel.
func parseCancels(args []string) ([]partitionMove, error) {
	var moves []partitionMove
	for _, arg := range args {
		if strings.Contains(arg, "=") {
			return nil, fmt.Errorf("invalid cancel %q: --cancel takes TOPIC:PARTITION without replicas", arg)
		}
		tp, err := parseTopicPartition(arg)
		if err != nil {
			return nil, err
		}
		moves = append(moves, partitionMove{topicPartition: tp})
	}
	return moves, checkDistinct(moves)
}

func checkDistinct(moves []partitionMove) error {
	for i, m := range moves {
		for _, o := range moves[:i] {
			if o.topicPartition == m.topicPartition {
				return fmt.Errorf("partition %s:%d is named more than once", m.topic, m.partition)
			}
		}
	}
	return nil
}

// alterAssignments sends the moves (or cancels) and prints what each
// became; it returns the partitions whose move or cancel went through.
func alterAssignments(ctx context.Context, out io.Writer, adm *kadm.Client, moves []partitionMove, cancel bool) ([]topicPartition, error) {
	req := kadm.AlterPartitionAssignmentsReq{}
	for _, m := range moves {
		if cancel {
			req.CancelAssign(m.topic, m.partition)
		} else {
			req.Assign(m.topic, m.partition, m.replicas)
		}
	}
	resps, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("reassign partitions: %w", err)
	}
	var done []topicPartition
	var failures []string
	for _, m := range moves {
		r, ok := resps[m.topic][m.partition]
		switch {
		case !ok:
			failures = append(failures, m.String()+": not in the response")
		case r.Err != nil:
			failures = append(failures, fmt.Sprintf("%s: %v", m, brokererr.WithMessage(r.Err, r.ErrMessage)))
		case cancel:
			fmt.Fprintf(out, "cancelled the reassignment of %s\n", m)
			done = append(done, m.topicPartition)
		default:
			fmt.Fprintf(out, "reassigning %s to %s\n", m, joinInt32s(m.replicas))
			done = append(done, m.topicPartition)
		}
	}
	if len(failures) > 0 {
		verb := "reassign"
		if cancel {
			verb = "cancel the reassignment of"
		}
		return done, fmt.Errorf("could not %s %d of %d partition(s): %s", verb, len(failures), len(moves), strings.Join(failures, "; "))
	}
	return done, nil
}

// waitReassigned polls until none of parts has a reassignment in
// progress, printing each as it finishes with its replicas then.
func waitReassigned(ctx context.Context, out io.Writer, adm *kadm.Client, parts []topicPartition) error {
	pending := slices.Clone(parts)
	for {
		set := kadm.TopicsSet{}
		for _, tp := range pending {
			set.Add(tp.topic, tp.partition)
		}
		resps, err := adm.ListPartitionReassignments(ctx, set)
		if err != nil && !retriableListError(err) {
			return fmt.Errorf("list reassignments: %w", err)
		}
		if err == nil {
			var still []topicPartition
			var finished []string
			for _, tp := range pending {
				if _, moving := resps[tp.topic][tp.partition]; moving {
					still = append(still, tp)
				} else {
					finished = append(finished, tp.topic)
				}
			}
			if len(finished) > 0 {
				md, _ := adm.Metadata(ctx, finished...)
				for _, tp := range pending {
					if slices.Contains(still, tp) {
						continue
					}
					replicas := "?"
					if p, ok := md.Topics[tp.topic].Partitions[tp.partition]; ok {
						replicas = joinInt32s(p.Replicas)
					}
					fmt.Fprintf(out, "reassignment of %s done: replicas %s\n", tp, replicas)
				}
			}
			if pending = still; len(pending) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the reassignment of %d partition(s): %w", len(pending), ctx.Err())
		case <-time.After(reassignPollInterval):
		}
	}
}

// retriableListError reports whether a failed list is worth asking again
// (the controller moved, say) rather than ending the wait.
func retriableListError(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && ke.Retriable
}

// listReassignments prints the moves in progress of topics (all when
// none are named).
func listReassignments(ctx context.Context, out io.Writer, adm *kadm.Client, topics []string) error {
	if len(topics) == 0 {
		listed, err := adm.ListTopicsWithInternal(ctx)
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		topics = listed.Names()
	}
	set := kadm.TopicsSet{}
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return fmt.Errorf("describe topics: %w", err)
	}
	for _, name := range topics {
		t, ok := md.Topics[name]
		if !ok || t.Err != nil {
			err := error(kerr.UnknownTopicOrPartition)
			if ok {
				err = t.Err
			}
			return fmt.Errorf("topic %q: %w", name, err)
		}
		for p := range t.Partitions {
			set.Add(name, p)
		}
	}
	resps, err := adm.ListPartitionReassignments(ctx, set)
	if err != nil {
		return fmt.Errorf("list reassignments: %w", err)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tREPLICAS\tADDING\tREMOVING")
	for _, r := range resps.Sorted() {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Topic, r.Partition, joinInt32s(r.Replicas), joinInt32s(r.AddingReplicas), joinInt32s(r.RemovingReplicas))
	}
	return tw.Flush()
}
