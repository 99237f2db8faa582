package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weir-broker/weir/internal/bench"
)

// newBenchCommand returns `weir bench` and its produce and consume
// subcommands, thin wrappers over package bench.
func newBenchCommand(conn *connFlags) *cobra.Command {
	var (
		load    loadFlags
		pid     int
		jsonOut bool
		report  string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test any Kafka-compatible cluster: fixed-rate producers and consumers, end-to-end latency",
		Long: `Run producers at a fixed total rate and consumers in one group against any
Kafka-compatible cluster, and report end-to-end latency (send to consume)
and acknowledgement latency percentiles, throughput per second and, when
the broker is a process on this machine, its CPU time per record. Records
sent during --warmup are left out of the figures.

'weir bench produce' and 'weir bench consume' measure one client's peak
throughput instead; 'weir bench compare' runs this workload against two
clusters in turn.`,
		Args: cobra.NoArgs,
		RunE: newBenchLoadRunE(conn, &load, &pid, &jsonOut, &report),
	}
	f := cmd.Flags()
	addLoadFlags(f, &load)
	f.IntVar(&pid, "broker-pid", 0, "local broker process to read CPU time of from /proc; 0 finds it by the first broker's port, -1 measures none")
	f.BoolVar(&jsonOut, "json", false, "print the result as one JSON document")
	f.StringVar(&report, "report", "", "also write a self-contained HTML report with latency and throughput charts to this file")
	produce, consume, compare := newBenchProduceCommand(conn), newBenchConsumeCommand(conn), newBenchCompareCommand(conn)
	cmd.AddCommand(produce, consume, compare)
	silence(cmd, produce, consume, compare)
	return cmd
}

func newBenchProduceCommand(conn *connFlags) *cobra.Command {
	var (
		opts       bench.ProduceOptions
		acks       string
		idempotent bool
	)
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce records as fast as one client can and report throughput and latency",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := parseAcks(acks)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("idempotent") && idempotent && a != bench.AcksAll {
				return fmt.Errorf("--idempotent requires --acks all (got --acks %s)", acks)
			}
			opts.Acks = a
			opts.DisableIdempotence = !idempotent
			if err := checkBenchSizes(opts.Partitions, opts.Records, opts.RecordSize); err != nil {
				return err
			}
			seeds, err := conn.seeds()
			if err != nil {
				return err
			}
			if opts.ClientOpts, err = conn.securityOpts(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := bench.Produce(ctx, seeds, opts)
			if err != nil && res.Records == 0 {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "produced %d records of %d bytes to %s in %v (acks=%s, idempotent=%t)\n",
				res.Records, opts.RecordSize, opts.Topic, res.Elapsed.Round(time.Millisecond), a, a == bench.AcksAll && idempotent)
			fmt.Fprintf(out, "throughput: %.0f records/s, %.2f MB/s\n", res.RecordsPerSec(), res.MBPerSec())
			fmt.Fprintf(out, "latency (Produce call to acknowledgement, client saturated): p50 %v, p99 %v, p999 %v, max %v\n",
				roundLatency(res.P50), roundLatency(res.P99), roundLatency(res.P999), roundLatency(res.Max))
			return err
		},
	}
	f := cmd.Flags()
	addBenchTopicFlags(f, &opts.Topic, &opts.Records)
	f.Int32Var(&opts.Partitions, "partitions", bench.DefaultPartitions, "partitions of the topic if it has to be created")
	f.IntVar(&opts.RecordSize, "record-size", bench.DefaultRecordSize, "bytes in each record's value")
	f.StringVar(&acks, "acks", "all", "acknowledgements to wait for: all, 1 or 0")
	f.BoolVar(&idempotent, "idempotent", true, "idempotent producer (KIP-98); only with --acks all")
	return cmd
}

func newBenchConsumeCommand(conn *connFlags) *cobra.Command {
	var opts bench.ConsumeOptions
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Read records from the start of a topic and report throughput",
		Long: `Read --records records from the start of the topic with one client and report
throughput. The topic must already hold that many records: run
'weir bench produce' with the same --topic and --records first.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Records < 1 {
				return fmt.Errorf("invalid --records %d: want at least 1", opts.Records)
			}
			seeds, err := conn.seeds()
			if err != nil {
				return err
			}
			if opts.ClientOpts, err = conn.securityOpts(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := bench.Consume(ctx, seeds, opts)
			if err != nil && res.Records == 0 {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "consumed %d records (%d bytes) from %s in %v\n",
				res.Records, res.Bytes, opts.Topic, res.Elapsed.Round(time.Millisecond))
			fmt.Fprintf(out, "throughput: %.0f records/s, %.2f MB/s\n", res.RecordsPerSec(), res.MBPerSec())
			return err
		},
	}
	f := cmd.Flags()
	addBenchTopicFlags(f, &opts.Topic, &opts.Records)
	return cmd
}

// addBenchTopicFlags adds the flags both bench subcommands share.
func addBenchTopicFlags(f *pflag.FlagSet, topic *string, records *int) {
	f.StringVar(topic, "topic", bench.DefaultTopic, "topic to use")
	f.IntVar(records, "records", bench.DefaultRecords, "number of records")
}

func checkBenchSizes(partitions int32, records, recordSize int) error {
	switch {
	case partitions < 1:
		return fmt.Errorf("invalid --partitions %d: want at least 1", partitions)
	case records < 1:
		return fmt.Errorf("invalid --records %d: want at least 1", records)
	case recordSize < 1:
		return fmt.Errorf("invalid --record-size %d: want at least 1", recordSize)
	}
	return nil
}

// roundLatency keeps three significant digits or so, enough for a report.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
