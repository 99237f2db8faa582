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
		heartbeat     time.Duration
		progressTopic string
		mode          string
		txnTimeout    time.Duration
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
It logs a line at start and one per published batch (info level), and a
warning for each failure.

Relay ids must be unique per outbox table and database: the id names the
Kafka transactional id and the relay's progress, so two relays sharing one
fence each other. Keep the id across restarts. Several polling relays with
different ids may share a table; several processes with one id fail over.
A relay that will not run again leaves rows claimed: hand them over with
weir outbox release.

With --mode cdc the relay reads the table's inserts through PostgreSQL
logical replication instead of polling, and leaves the rows pending. It
needs wal_level=logical and a role with the REPLICATION attribute that
may connect for replication (pg_hba.conf); at its first start the role
must own the outbox table (the relay creates a publication of it), and
the server needs a free slot (max_replication_slots). One cdc relay id
per table: a second one refuses to start, and so does a cdc relay on a
table a polling relay is publishing (and a polling relay on a table a cdc
relay covers). Its slot keeps WAL on the server until the relay confirms it; a
relay id that will not run again must have its slot dropped (weir outbox
drop-slot), or the server keeps WAL for ever. A large source transaction
is published in Kafka transactions of at most --batch-size events.

An event Kafka refuses (missing topic, over max.message.bytes) blocks the
relay, which logs its id; skip it with weir outbox skip.`,
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
			case heartbeat <= 0:
				return fmt.Errorf("--heartbeat-interval %v: want a positive duration", heartbeat)
			case relayID == "":
				return errors.New("--relay-id: must not be empty")
			case mode != "poll" && mode != "cdc":
				return fmt.Errorf("--mode %q: want poll or cdc", mode)
			case progressTopic == "":
				return errors.New("--progress-topic: must not be empty")
			case txnTimeout < outbox.MinTxnTimeout:
				return fmt.Errorf("--transaction-timeout: transaction timeout %v is under %v", txnTimeout, outbox.MinTxnTimeout)
			}
			if err := outbox.CheckTableName(table); err != nil {
				return fmt.Errorf("--table: %w", err)
			}
			seeds, err := conn.seeds()
			if err != nil {
				return err
			}
			security, err := conn.securityOpts()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rcfg := outbox.RelayConfig{
				RelayID:           relayID,
				Brokers:           seeds,
				BatchSize:         batchSize,
				PollInterval:      pollInterval,
				HeartbeatInterval: heartbeat,
				ProgressTopic:     progressTopic,
				Table:             table,
				TxnTimeout:        txnTimeout,
				ClientOpts:        security,
				Logger:            slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo})),
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
	relay.Flags().DurationVar(&heartbeat, "heartbeat-interval", outbox.DefaultHeartbeatInterval,
		"cdc mode: how often an idle relay records the server's position and confirms it to its slot, so other tables' writes do not pile up WAL")
	relay.Flags().StringVar(&progressTopic, "progress-topic", outbox.DefaultProgressTopic, "compacted topic recording published batches")
	relay.Flags().StringVar(&mode, "mode", "poll", "how the relay reads the outbox: poll (claim rows) or cdc (logical replication)")
	relay.Flags().DurationVar(&txnTimeout, "transaction-timeout", outbox.DefaultTxnTimeout,
		fmt.Sprintf("Kafka transaction timeout (at least %v, at most the brokers' transaction.max.timeout.ms); a batch's produce is given half of it", outbox.MinTxnTimeout))

	cmd.AddCommand(migrate, relay, newOutboxSkipCommand(conn), newOutboxDropSlotCommand(conn), newOutboxReleaseCommand(conn))
	return cmd
}

// newOutboxSkipCommand is `weir outbox skip`: the way past an event Kafka
// refuses, which otherwise blocks its relay for ever.
func newOutboxSkipCommand(conn *connFlags) *cobra.Command {
	var (
		dsn, table, relayID, mode, lsn, reason, progressTopic string
		id                                                    int64
	)
	skip := &cobra.Command{
		Use:   "skip",
		Short: "Record that a relay must not publish an event Kafka refuses",
		Long: `An event Kafka refuses (its topic does not exist, or it exceeds the topic's
max.message.bytes) fails its Kafka transaction every time and blocks its
relay, which logs the event's id (and in cdc mode the commit LSN of its
source transaction). This command records in the progress topic that the
relay must not publish it; the relay, which starts over after each failed
attempt, then publishes everything else. The skipped event reaches no
consumer.

  --id N     the event with id N; its row must still be in the table (in
             poll mode, pending or claimed). The polling relay marks the
             row sent without publishing it.
  --lsn LSN  (cdc mode) every event of the source transaction committed at
             LSN, for instance one whose row was deleted: in cdc mode
             deleting a row does not unblock the relay, as the slot streams
             the insert again. Refused for a transaction the relay has
             published already, whole, or of which a part is published
             (one larger than --batch-size): skip the latter by --id.

The skip is tied to the relay id and to this database (a restored or
recreated database does not inherit it). With several polling relays on
one table, skip the event for each relay id that reports it.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case dsn == "":
				return fmt.Errorf("%s: --dsn is required (or set %s)", cmd.CommandPath(), outboxDSNEnv)
			case relayID == "":
				return errors.New("--relay-id: required: the relay that reports the event")
			case mode != "poll" && mode != "cdc":
				return fmt.Errorf("--mode %q: want poll or cdc", mode)
			case (id > 0) == (lsn != ""):
				return errors.New("give exactly one of --id (a positive event id) and --lsn")
			case lsn != "" && mode != "cdc":
				return errors.New("--lsn: only in cdc mode (the polling relay skips by --id)")
			case progressTopic == "":
				return errors.New("--progress-topic: must not be empty")
			}
			if err := outbox.CheckTableName(table); err != nil {
				return fmt.Errorf("--table: %w", err)
			}
			seeds, err := conn.seeds()
			if err != nil {
				return err
			}
			security, err := conn.securityOpts()
			if err != nil {
				return err
			}
			ctx := contextOf(cmd)
			rcfg := outbox.RelayConfig{RelayID: relayID, Brokers: seeds, ProgressTopic: progressTopic, Table: table, ClientOpts: security}
			what := fmt.Sprintf("event %d", id)
			if mode == "cdc" {
				r, err := outbox.NewCDCRelay(dsn, rcfg)
				if err != nil {
					return err
				}
				if lsn != "" {
					what = "the source transaction committed at " + lsn
					err = r.SkipTransaction(ctx, lsn, reason)
				} else {
					err = r.SkipEvent(ctx, id, reason)
				}
				if err != nil {
					return err
				}
			} else {
				pool, err := pgxpool.New(ctx, dsn)
				if err != nil {
					return fmt.Errorf("database: %w", err)
				}
				defer pool.Close()
				r, err := outbox.NewRelay(pool, rcfg)
				if err != nil {
					return err
				}
				if err := r.Skip(ctx, id, reason); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "relay %s will skip %s\n", relayID, what)
			return nil
		},
	}
	skip.Flags().StringVar(&dsn, "dsn", os.Getenv(outboxDSNEnv), "PostgreSQL connection string (env "+outboxDSNEnv+")")
	skip.Flags().StringVar(&table, "table", outbox.DefaultTable, "outbox table, optionally schema-qualified")
	skip.Flags().StringVar(&relayID, "relay-id", "", "the relay that reports the refused event (required)")
	skip.Flags().StringVar(&mode, "mode", "poll", "the relay's mode: poll or cdc")
	skip.Flags().Int64Var(&id, "id", 0, "id of the event to skip")
	skip.Flags().StringVar(&lsn, "lsn", "", "cdc mode: commit LSN of the source transaction to skip whole (e.g. 0/1A2B3C8)")
	skip.Flags().StringVar(&reason, "reason", "", "why, kept in the skip record")
	skip.Flags().StringVar(&progressTopic, "progress-topic", outbox.DefaultProgressTopic, "the relay's progress topic")
	return skip
}

// newOutboxDropSlotCommand is `weir outbox drop-slot`: an unused slot
// keeps WAL on the database server for ever.
func newOutboxDropSlotCommand(conn *connFlags) *cobra.Command {
	var dsn, table, relayID, progressTopic string
	var markPublished bool
	drop := &cobra.Command{
		Use:   "drop-slot",
		Short: "Drop a retired cdc relay's replication slot and publication",
		Long: `A cdc relay's replication slot keeps the WAL its relay has not confirmed, for
ever if the relay never runs again. This drops the slot and the publication
of relay --relay-id on --table. Events committed since the relay last
published are then never published by it. Before dropping the slot it
records the drop in the progress topic (--brokers, --progress-topic), so
that the relay id refuses to start again on this database, even if it had
published nothing yet: start a new relay under another relay id. It fails,
dropping nothing, while a relay streams from the slot.

To switch the table to polling, stop the cdc relay and run this with
--mark-published: after the drop it marks sent exactly the pending rows
whose event UUIDs (weir-event-uuid) are in committed records of their
topics, read to their last stable offsets, and leaves every other row
pending for the polling relay. It may be run again if interrupted.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case dsn == "":
				return fmt.Errorf("%s: --dsn is required (or set %s)", cmd.CommandPath(), outboxDSNEnv)
			case relayID == "":
				return errors.New("--relay-id: required: the relay whose slot to drop")
			}
			if err := outbox.CheckTableName(table); err != nil {
				return fmt.Errorf("--table: %w", err)
			}
			if progressTopic == "" {
				return errors.New("--progress-topic: must not be empty")
			}
			seeds, err := conn.seeds()
			if err != nil {
				return err
			}
			security, err := conn.securityOpts()
			if err != nil {
				return err
			}
			r, err := outbox.NewCDCRelay(dsn, outbox.RelayConfig{RelayID: relayID, Brokers: seeds, ProgressTopic: progressTopic, Table: table, ClientOpts: security})
			if err != nil {
				return err
			}
			slot, pub, err := r.DropSlot(contextOf(cmd))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "slot %s, publication %s dropped\n", orNone(slot), orNone(pub))
			if markPublished {
				n, err := r.MarkPublished(contextOf(cmd))
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d published rows marked sent\n", n)
			}
			return nil
		},
	}
	drop.Flags().StringVar(&dsn, "dsn", os.Getenv(outboxDSNEnv), "PostgreSQL connection string (env "+outboxDSNEnv+")")
	drop.Flags().StringVar(&table, "table", outbox.DefaultTable, "outbox table, optionally schema-qualified")
	drop.Flags().StringVar(&relayID, "relay-id", "", "the retired relay (required)")
	drop.Flags().StringVar(&progressTopic, "progress-topic", outbox.DefaultProgressTopic, "the relay's progress topic, where the drop is recorded")
	drop.Flags().BoolVar(&markPublished, "mark-published", false, "then mark sent the pending rows whose events are in their topics (to switch the table to polling)")
	return drop
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// newOutboxReleaseCommand is `weir outbox release`: the safe way to hand
// a dead polling relay's claimed rows to the others.
func newOutboxReleaseCommand(conn *connFlags) *cobra.Command {
	var dsn, table, relayID, progressTopic string
	release := &cobra.Command{
		Use:   "release",
		Short: "Settle the rows a polling relay that will not run again left claimed",
		Long: `Rows claimed by a polling relay id that never comes back stay claimed. This
does for relay --relay-id what its restart would do before claiming
anything: fence it (a process still running under that id stops), read
its last committed batch from the progress topic, mark that batch's rows
sent and put its other claimed rows back to pending, for relays with other
ids to publish. Releasing the rows with an UPDATE instead would publish
again a batch that committed before its rows were marked.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case dsn == "":
				return fmt.Errorf("%s: --dsn is required (or set %s)", cmd.CommandPath(), outboxDSNEnv)
			case relayID == "":
				return errors.New("--relay-id: required: the relay whose rows to release")
			case progressTopic == "":
				return errors.New("--progress-topic: must not be empty")
			}
			if err := outbox.CheckTableName(table); err != nil {
				return fmt.Errorf("--table: %w", err)
			}
			seeds, err := conn.seeds()
			if err != nil {
				return err
			}
			security, err := conn.securityOpts()
			if err != nil {
				return err
			}
			ctx := contextOf(cmd)
			pool, err := pgxpool.New(ctx, dsn)
			if err != nil {
				return fmt.Errorf("database: %w", err)
			}
			defer pool.Close()
			r, err := outbox.NewRelay(pool, outbox.RelayConfig{RelayID: relayID, Brokers: seeds, ProgressTopic: progressTopic, Table: table, ClientOpts: security})
			if err != nil {
				return err
			}
			sent, released, err := r.Release(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "relay %s: %d rows of its committed batch marked sent, %d rows released\n", relayID, sent, released)
			return nil
		},
	}
	release.Flags().StringVar(&dsn, "dsn", os.Getenv(outboxDSNEnv), "PostgreSQL connection string (env "+outboxDSNEnv+")")
	release.Flags().StringVar(&table, "table", outbox.DefaultTable, "outbox table, optionally schema-qualified")
	release.Flags().StringVar(&relayID, "relay-id", "", "the relay that will not run again (required)")
	release.Flags().StringVar(&progressTopic, "progress-topic", outbox.DefaultProgressTopic, "the relay's progress topic")
	return release
}
