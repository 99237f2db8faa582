package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/pkg/outbox"
)

// outboxDSNEnv names the environment variable --dsn defaults to, so that
// a password need not appear on the command line.
const outboxDSNEnv = "WEIR_OUTBOX_DSN"

func newOutboxCommand(conn *connFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Publish a PostgreSQL transactional outbox to Kafka exactly once",
	}
	var dsn, table string
	addDB := func(c *cobra.Command) {
		c.Flags().StringVar(&dsn, "dsn", os.Getenv(outboxDSNEnv), "PostgreSQL connection string (env "+outboxDSNEnv+")")
		c.Flags().StringVar(&table, "table", outbox.DefaultTable, "outbox table, optionally schema-qualified")
	}
	needDSN := func(c *cobra.Command) error {
		if dsn == "" {
			return fmt.Errorf("%s: --dsn is required (or set %s)", c.CommandPath(), outboxDSNEnv)
		}
		return nil
	}

	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Create the outbox table and what the relay needs next to it, if missing",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDSN(cmd); err != nil {
				return err
			}
			if err := outbox.CheckTableName(table); err != nil {
				return err
			}
			ctx := contextOf(cmd)
			db, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return fmt.Errorf("connect to database: %w", err)
			}
			defer db.Close(ctx)
			if err := outbox.MigrateTable(ctx, db, table); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "outbox table %s ready\n", table)
			return nil
		},
	}
	addDB(migrate)

	var (
		relayID       string
		batchSize     int
		pollInterval  time.Duration
		progressTopic string
		mode          string
	)
	relay := &cobra.Command{
		Use:   "relay",
		Short: "Publish the outbox's events, each exactly once, until interrupted",
		Long: `Claims pending outbox rows in batches, publishes each batch in one Kafka
transaction (transactional id weir-outbox-RELAY-ID) together with a record
in the compacted progress topic, then marks the rows sent. After a crash it
reconciles the table from the progress topic before publishing anything,
so nothing is published twice. Every record carries the event id in the
header weir-event-id. Run the table's migration first (weir outbox migrate).

With --mode cdc the relay reads the table's inserts through PostgreSQL
logical replication (a publication and a replication slot it creates;
wal_level=logical) instead of polling, and leaves the rows pending.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDSN(cmd); err != nil {
				return err
			}
			// Checked here, not left to the relay's defaults: an explicit
			// zero or empty value must not silently mean the default.
			switch {
			case batchSize < 1 || batchSize > outbox.MaxBatchSize:
				return fmt.Errorf("--batch-size: batch size %d out of range 1..%d", batchSize, outbox.MaxBatchSize)
			case pollInterval <= 0:
				return fmt.Errorf("--poll-interval %v: want a positive duration", pollInterval)
			case relayID == "":
				return errors.New("--relay-id: must not be empty")
			case mode != "poll" && mode != "cdc":
				return fmt.Errorf("--mode %q: want poll or cdc", mode)
			}
			if err := outbox.CheckTableName(table); err != nil {
				return fmt.Errorf("--table: %w", err)
			}
			seeds, err := conn.seeds()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rcfg := outbox.RelayConfig{
				RelayID:       relayID,
				Brokers:       seeds,
				BatchSize:     batchSize,
				PollInterval:  pollInterval,
				ProgressTopic: progressTopic,
				Table:         table,
				Logger:        slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})),
			}
			var r interface {
				Run(context.Context) error
				Stats() outbox.Stats
			}
			if mode == "cdc" {
				cr, err := outbox.NewCDCRelay(dsn, rcfg)
				if err != nil {
					return err
				}
				r = cr
			} else {
				pool, err := pgxpool.New(ctx, dsn)
				if err != nil {
					return fmt.Errorf("database: %w", err)
				}
				defer pool.Close()
				pr, err := outbox.NewRelay(pool, rcfg)
				if err != nil {
					return err
				}
				r = pr
			}
			err = r.Run(ctx)
			s := r.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "published %d events in %d transactions\n", s.Events, s.Batches)
			if errors.Is(err, outbox.ErrFenced) {
				return fmt.Errorf("relay %s: %w", relayID, err)
			}
			return err
		},
	}
	addDB(relay)
	relay.Flags().StringVar(&relayID, "relay-id", outbox.DefaultRelayID, "stable name of this relay; a restarted relay must keep it")
	relay.Flags().IntVar(&batchSize, "batch-size", outbox.DefaultBatchSize, fmt.Sprintf("events per Kafka transaction (1..%d)", outbox.MaxBatchSize))
	relay.Flags().DurationVar(&pollInterval, "poll-interval", outbox.DefaultPollInterval, "wait between polls of an empty outbox")
	relay.Flags().StringVar(&progressTopic, "progress-topic", outbox.DefaultProgressTopic, "compacted topic recording published batches")
	relay.Flags().StringVar(&mode, "mode", "poll", "how the relay reads the outbox: poll (claim rows) or cdc (logical replication)")

	cmd.AddCommand(migrate, relay)
	return cmd
}
