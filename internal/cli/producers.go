package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newProducersCommand(conn *connFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "producers",
		Short: "Show the idempotent and transactional producers partitions track",
	}
	describe := &cobra.Command{
		Use:   "describe TOPIC",
		Short: "List each partition's active producers: id, epoch, last sequence, last timestamp, open transaction",
		Args:  exactArgs(1, "one TOPIC"),
		RunE: conn.withAdmin(func(cmd *cobra.Command, args []string, adm *kadm.Client) error {
			topics, err := adm.ListTopics(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("describe topic: %w", err)
			}
			td, ok := topics[args[0]]
			if !ok || td.Err != nil {
				return fmt.Errorf("topic %s: %v", args[0], td.Err)
			}
			set := kadm.TopicsSet{}
			set.Add(args[0], td.Partitions.Numbers()...)
			described, err := adm.DescribeProducers(cmd.Context(), set)
			if err != nil {
				return fmt.Errorf("describe producers: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION\tPRODUCER ID\tEPOCH\tLAST SEQUENCE\tLAST TIMESTAMP\tTXN START OFFSET")
			var failures []string
			described.EachPartition(func(p kadm.DescribedProducersPartition) {
				if p.Err != nil {
					failures = append(failures, fmt.Sprintf("partition %d: %v", p.Partition, p.Err))
					return
				}
				for _, pr := range p.ActiveProducers.Sorted() {
					fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%d\n", p.Partition, pr.ProducerID, pr.ProducerEpoch,
						pr.LastSequence, time.UnixMilli(pr.LastTimestamp).UTC().Format(time.RFC3339Nano), pr.CurrentTxnStartOffset)
				}
			})
			tw.Flush()
			return summarize("describe producers", len(td.Partitions), failures)
		}),
	}
	cmd.AddCommand(describe)
	silence(cmd, describe)
	return cmd
}
