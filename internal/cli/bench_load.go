package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weir-broker/weir/internal/bench"
)

// loadFlags are the workload flags of `weir bench` and `weir bench
// compare`.
type loadFlags struct {
	opts bench.LoadOptions
	acks string
}

func addLoadFlags(f *pflag.FlagSet, l *loadFlags) {
	l.opts = bench.DefaultLoadOptions()
	o := &l.opts
	f.IntVar(&o.Producers, "producers", o.Producers, "producer clients; the rate is spread evenly across them")
	f.IntVar(&o.Consumers, "consumers", o.Consumers, "consumer clients, all in one new group")
	f.Float64Var(&o.Rate, "rate", o.Rate, "total target rate in records per second; 0 sends as fast as possible")
	f.DurationVar(&o.Duration, "duration", o.Duration, "how long to measure, after the warmup")
	f.DurationVar(&o.Warmup, "warmup", o.Warmup, "how long to run before measuring; records sent then are left out of the figures")
	f.IntVar(&o.RecordSize, "record-size", o.RecordSize, "bytes in each record's value (at least 24: the send time and sequence it carries)")
	f.Int32Var(&o.Partitions, "partitions", o.Partitions, "partitions of the topic if it has to be created")
	f.StringVar(&o.Topic, "topic", o.Topic, "topic to use; records of earlier runs on it are skipped")
	f.StringVar(&l.acks, "acks", "all", "acknowledgements to wait for: all, 1 or 0")
	f.BoolVar(&o.Idempotent, "idempotent", o.Idempotent, "idempotent producers (KIP-98); only with --acks all")
	f.BoolVar(&o.Transactional, "transactional", false, "each producer commits a transaction every --commit-interval; consumers read committed")
	f.DurationVar(&o.CommitInterval, "commit-interval", o.CommitInterval, "time between a transactional producer's commits")
	f.DurationVar(&o.Linger, "linger", 0, "producers' linger: how long a batch waits for more records")
}

// options returns the parsed workload, validated. An --acks other than
// all turns idempotence off unless --idempotent was given.
func (l *loadFlags) options(cmd *cobra.Command) (bench.LoadOptions, error) {
	o := l.opts
	a, err := parseAcks(l.acks)
	if err != nil {
		return o, err
	}
	o.Acks = a
	if a != bench.AcksAll && !cmd.Flags().Changed("idempotent") {
		o.Idempotent = false
	}
	return o, o.Validate()
}

func newBenchLoadRunE(conn *connFlags, l *loadFlags, pid *int, jsonOut *bool, report *string) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		o, err := l.options(cmd)
		if err != nil {
			return err
		}
		if *pid < -1 {
			return fmt.Errorf("invalid --broker-pid %d", *pid)
		}
		o.BrokerPID = *pid
		seeds, err := conn.seeds()
		if err != nil {
			return err
		}
		if o.ClientOpts, err = conn.securityOpts(); err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
		defer stop()
		res, runErr := bench.Load(ctx, seeds, o)
		if res == nil {
			return runErr
		}
		out := cmd.OutOrStdout()
		if *jsonOut {
			if err := bench.WriteJSON(out, res); err != nil {
				return err
			}
		} else {
			res.WriteText(out)
		}
		if *report != "" {
			if err := bench.WriteLoadHTMLFile(*report, res); err != nil {
				return err
			}
		}
		return runErr
	}
}

func newBenchCompareCommand(conn *connFlags) *cobra.Command {
	var (
		load    loadFlags
		rounds  int
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "compare ADDR_A ADDR_B",
		Short: "Run the same load against two clusters in alternating rounds and print ratios B/A",
		Long: `Run the 'weir bench' workload against cluster A, then B, --rounds times
(A, B, A, B, ...), and print every metric's figure per round, the medians
and the ratio of the medians B/A. Each address is a comma-separated seed
list; --command-config applies to both. A local broker process is found by
each address's port for CPU per record.`,
		Args: exactArgs(2, "two cluster addresses, A and B"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := load.options(cmd)
			if err != nil {
				return err
			}
			if rounds < 1 {
				return fmt.Errorf("invalid --rounds %d: want at least 1", rounds)
			}
			a, err := parseBrokers(args[0])
			if err != nil {
				return fmt.Errorf("ADDR_A: %w", err)
			}
			b, err := parseBrokers(args[1])
			if err != nil {
				return fmt.Errorf("ADDR_B: %w", err)
			}
			if o.ClientOpts, err = conn.securityOpts(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, runErr := bench.Compare(ctx, a, b, o, rounds, cmd.ErrOrStderr())
			if runErr != nil {
				return runErr
			}
			if jsonOut {
				return bench.WriteJSON(cmd.OutOrStdout(), res)
			}
			res.WriteText(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	addLoadFlags(f, &load)
	f.IntVar(&rounds, "rounds", 3, "rounds; each runs the workload against A, then B")
	f.BoolVar(&jsonOut, "json", false, "print the comparison, with every run's result, as one JSON document")
	return cmd
}
