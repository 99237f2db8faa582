package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTxnCommand(conn *connFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "List, describe and abort transactions (KIP-664)",
	}
	var states []string
	list := &cobra.Command{
		Use:   "list",
		Short: "List transactional ids with their producer id and state",
		Args:  exactArgs(0, "no arguments"),
		RunE: conn.withAdmin(func(cmd *cobra.Command, _ []string, adm *kadm.Client) error {
			listed, err := adm.ListTransactions(cmd.Context(), nil, states)
			if err != nil {
				return fmt.Errorf("list transactions: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TRANSACTIONAL ID\tPRODUCER ID\tSTATE")
			for _, t := range listed.Sorted() {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", t.TxnID, t.ProducerID, t.State)
			}
			return tw.Flush()
		}),
	}
	list.Flags().StringSliceVar(&states, "state", nil, "only transactions in these states (Ongoing, PrepareCommit, CompleteAbort, …)")
	describe := &cobra.Command{
		Use:   "describe TRANSACTIONAL-ID...",
		Short: "Show a transaction's producer, state, timeout, start and partitions",
		Args:  minArgs(1, "at least one TRANSACTIONAL-ID"),
		RunE: conn.withAdmin(func(cmd *cobra.Command, args []string, adm *kadm.Client) error {
			described, err := adm.DescribeTransactions(cmd.Context(), args...)
			if err != nil {
				return fmt.Errorf("describe transactions: %w", err)
			}
			var failures []string
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TRANSACTIONAL ID\tPRODUCER ID\tEPOCH\tSTATE\tTIMEOUT\tSTARTED\tPARTITIONS")
			for _, id := range args {
				d, ok := described[id]
				if !ok || d.Err != nil {
					failures = append(failures, fmt.Sprintf("%s: %v", id, d.Err))
					continue
				}
				started := "-"
				if d.StartTimestamp > 0 {
					started = time.UnixMilli(d.StartTimestamp).UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%v\t%s\t%v\n", id, d.ProducerID, d.ProducerEpoch, d.State,
					time.Duration(d.TimeoutMillis)*time.Millisecond, started, d.Topics.Sorted())
			}
			tw.Flush()
			return summarize("describe", len(args), failures)
		}),
	}
	var (
		topic     string
		partition int32
		startOff  int64
	)
	abort := &cobra.Command{
		Use:   "abort --topic T --partition P --start-offset O",
		Short: "Abort a hanging transaction: the open transaction in a partition that starts at an offset",
		Long: `Abort a hanging transaction, as Kafka's kafka-transactions.sh abort does:
find the producer whose open transaction in the partition starts at the
given offset (see 'weir producers describe') and write an ABORT marker for
it, which moves the partition's last stable offset past it.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" || partition < 0 || startOff < 0 {
				return fmt.Errorf("--topic, --partition and --start-offset are required")
			}
			adm, err := conn.admin()
			if err != nil {
				return err
			}
			defer adm.Close()
			described, err := adm.DescribeProducers(cmd.Context(), kadm.TopicsSet{topic: {partition: {}}})
			if err != nil {
				return fmt.Errorf("describe producers: %w", err)
			}
			var target *kadm.DescribedProducer
			described.EachProducer(func(p kadm.DescribedProducer) {
				if p.Partition == partition && p.CurrentTxnStartOffset == startOff {
					target = &p
				}
			})
			if target == nil {
				return fmt.Errorf("no open transaction starts at offset %d of %s-%d", startOff, topic, partition)
			}
			resp, err := adm.WriteTxnMarkers(cmd.Context(), kadm.TxnMarkers{
				ProducerID: target.ProducerID, ProducerEpoch: target.ProducerEpoch, Commit: false,
				CoordinatorEpoch: target.CoordinatorEpoch, Topics: kadm.TopicsSet{topic: {partition: {}}},
			})
			if err != nil {
				return fmt.Errorf("write abort marker: %w", err)
			}
			var failure error
			resp.EachPartition(func(p kadm.TxnMarkersPartitionResponse) {
				if p.Err != nil {
					failure = fmt.Errorf("abort in %s-%d: %w", p.Topic, p.Partition, p.Err)
				}
			})
			if failure != nil {
				return failure
			}
			fmt.Fprintf(cmd.OutOrStdout(), "aborted the transaction of producer %d (epoch %d) starting at %s-%d offset %d\n",
				target.ProducerID, target.ProducerEpoch, topic, partition, startOff)
			return nil
		},
	}
	abort.Flags().StringVar(&topic, "topic", "", "topic of the hanging transaction")
	abort.Flags().Int32Var(&partition, "partition", -1, "partition of the hanging transaction")
	abort.Flags().Int64Var(&startOff, "start-offset", -1, "first offset of the hanging transaction")
	cmd.AddCommand(list, describe, abort)
	silence(cmd, list, describe, abort)
	return cmd
}
