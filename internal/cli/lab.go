package cli

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/internal/lab"
	"github.com/weir-broker/weir/internal/simulator"
)

// errGuaranteeBroken makes `weir lab` exit non-zero after printing which
// scenario broke its guarantee.
var errGuaranteeBroken = errors.New("lab: a delivery guarantee was broken (see above)")

// newLabCommand returns `weir lab`, which runs every delivery-guarantee
// scenario under injected faults and reports what it measured.
func newLabCommand(conn *connFlags) *cobra.Command {
	var (
		cfg        lab.Config
		seed       int64
		reportPath string
		only       []string
		timeout    time.Duration
		planOnly   bool
		ui         bool
		uiListen   string
	)
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Measure every delivery guarantee under injected faults",
		Long: `Run each producer, consumer and end-to-end configuration under lost
acknowledgements, dropped connections and killed processes, check every record
sent against every record received, and judge each configuration against the
guarantee it claims (at-most-once, at-least-once, exactly-once).

By default each scenario runs against its own 'weir serve' child process on a
temporary data directory, with faults injected through --unsafe-faults and the
broker killed with SIGKILL and restarted. Given --brokers on the command line
(WEIR_BROKERS is not enough), the scenarios run against that cluster instead:
broker kills are reported as not run, and lost acknowledgements and dropped
connections are injected in the producer's own connections.

With --cluster 3 the lab measures the broker layer instead: each row starts a
three-node cluster of 'weir serve' processes (each node behind a proxy of the
lab's), creates a topic with replication factor 3 and the row's
min.insync.replicas and unclean.leader.election.enable, writes to it at a
steady pace with the row's acks, and injects the row's fault: the partition's
leader killed (SIGKILL, then restarted), the leader frozen (SIGSTOP past the
session timeout, then SIGCONT), the followers lagging (their replication
fetches cut until they leave the ISR) and then the leader killed, or two nodes
lost (killed, then restarted). Only acks=all with min.insync.replicas=2 and
unclean election off claims that no acknowledged record is lost; the other
rows show the loss measured and how many writes the brokers refused
(NOT_ENOUGH_REPLICAS and the like). Combinations that would repeat another
row are pruned, and the report says which and why. A --cluster run takes a few
minutes; --records and --consumer-records do not apply to it (the producer
writes 200 records/s for as long as the fault lasts).

The table goes to the terminal and an HTML report with charts to --report. The
command exits non-zero when a guarantee is broken. --seed reproduces a run's
fault schedule.

With --ui the lab serves the interactive delivery simulator at
http://--ui-listen/simulator instead: pick a producer's and a consumer's
settings and a seed, start a session (its own 'weir serve' child and a
consumer worker process), click faults while records flow and watch each
record's fate and the checker's verdict. With --ui --cluster 3 each session
runs a three-node cluster instead (a topic of one partition, replication factor
3, min.insync.replicas=2), and the page offers the faults that act on its
nodes: kill the partition's leader (SIGKILL, restarted once another replica
leads) and kill two nodes (both followers, restarted a few seconds later).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("brokers") {
				seeds, err := conn.seeds()
				if err != nil {
					return err
				}
				cfg.Brokers = seeds
				if cfg.ClientOpts, err = conn.securityOpts(); err != nil {
					return err
				}
				if cfg.CommandConfig, err = absPath(conn.commandConfig); err != nil {
					return err
				}
				cfg.CommandProperties = conn.commandProps
			} else if conn.commandConfig != "" || len(conn.commandProps) > 0 {
				return errors.New("--command-config and --command-property apply to an external cluster given with --brokers; the lab's own brokers need none")
			}
			if ui {
				return serveSimulator(cmd, uiListen, cfg.Cluster)
			}
			if cfg.Cluster != 0 && cfg.Cluster != 3 {
				return fmt.Errorf("--cluster %d: the broker layer's rows need three nodes (replication factor 3); use --cluster 3", cfg.Cluster)
			}
			if cfg.Cluster > 0 && len(cfg.Brokers) > 0 {
				return errors.New("--cluster runs its own nodes; it does not combine with --brokers")
			}
			if cfg.Records < 0 || cfg.ConsumerRecords < 0 || cfg.Partitions < 0 {
				return errors.New("--records, --consumer-records and --partitions must not be negative")
			}
			if (cfg.Records > 0 && cfg.Records < 100) || (cfg.ConsumerRecords > 0 && cfg.ConsumerRecords < 100) {
				return errors.New("--records and --consumer-records must be at least 100")
			}
			if !cmd.Flags().Changed("seed") {
				seed = rand.Int63n(1 << 31)
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("lab: find the weir binary: %w", err)
			}
			cfg.Exe, cfg.Seed, cfg.Only, cfg.ScenarioTimeout = exe, seed, only, timeout
			out := cmd.OutOrStdout()
			if planOnly {
				fmt.Fprintf(out, "seed %d\n", seed)
				for _, line := range lab.Plan(cfg) {
					fmt.Fprintln(out, line)
				}
				return nil
			}
			cfg.Progress = out
			fmt.Fprintf(out, "weir lab: seed %d (rerun with --seed %d)\n", seed, seed)
			ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := lab.Run(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "\nlost / duplicated by configuration and fault (! = claimed guarantee broken):")
			fmt.Fprintln(out)
			if err := lab.WriteMatrix(out, rep); err != nil {
				return err
			}
			if err := lab.WriteTable(out, rep); err != nil {
				return err
			}
			if reportPath != "" {
				if err := lab.WriteHTMLFile(reportPath, rep); err != nil {
					return err
				}
				fmt.Fprintf(out, "\nreport written to %s (%.1fs, seed %d)\n", reportPath, rep.Elapsed.Seconds(), seed)
			}
			if rep.Failed() {
				return errGuaranteeBroken
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&seed, "seed", 0, "seed of the fault schedule (default: random, printed)")
	f.StringVar(&reportPath, "report", "weir-lab-report.html", "where to write the HTML report (empty: none)")
	f.IntVar(&cfg.Records, "records", 2000, "records each producer scenario sends")
	f.IntVar(&cfg.ConsumerRecords, "consumer-records", 1500, "records each consumer and end-to-end scenario reads")
	f.Int32Var(&cfg.Partitions, "partitions", 3, "partitions of each scenario's topics")
	f.StringSliceVar(&only, "only", nil, "run only scenarios whose name (side / config / fault) contains one of these")
	f.BoolVar(&planOnly, "plan", false, "print each scenario's fault schedule for the seed and exit")
	f.DurationVar(&timeout, "scenario-timeout", 60*time.Second, "longest a scenario may run (with --cluster, at least 2m)")
	f.IntVar(&cfg.Cluster, "cluster", 0, "measure the broker layer on a cluster of this many nodes (3) instead: acks × min.insync.replicas × unclean election under leader and follower faults")
	f.StringVar(&cfg.ExtraFaults, "unsafe-broker-faults", "", "extra --unsafe-faults rules for every embedded broker, e.g. producer.dedup=skip to check the checker (never in production)")
	f.BoolVar(&ui, "ui", false, "serve the interactive delivery simulator instead of running the scenarios (each session starts its own broker, or with --cluster 3 its own cluster)")
	f.StringVar(&uiListen, "ui-listen", "127.0.0.1:9645", "host:port the simulator is served on, with --ui")
	worker := newLabWorkerCommand()
	cmd.AddCommand(worker)
	silence(cmd, worker)
	return cmd
}

// newLabWorkerCommand is the hidden `weir lab worker` the lab runs as a
// child process for consumer and end-to-end scenarios, so that it can
// kill a real process.
func newLabWorkerCommand() *cobra.Command {
	var (
		w            lab.WorkerConfig
		killOnSignal bool
	)
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "Run one consumer or transform worker of a lab scenario",
		Hidden: true,
		Args:   exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			brokers, err := cmd.Flags().GetString("brokers")
			if err != nil {
				return err
			}
			if w.Brokers, err = parseBrokers(brokers); err != nil {
				return err
			}
			commandConfig, err := cmd.Flags().GetString("command-config")
			if err != nil {
				return err
			}
			commandProps, err := cmd.Flags().GetStringArray("command-property")
			if err != nil {
				return err
			}
			if w.ClientOpts, err = clientSecurity(commandConfig, commandProps); err != nil {
				return err
			}
			if w.Topic == "" || w.Group == "" || w.Instance == "" {
				return errors.New("lab worker: --topic, --group and --instance are required")
			}
			w.Status = cmd.OutOrStdout()
			if killOnSignal {
				// SIGUSR1 asks for a crash in the middle of the next batch:
				// the simulator's "kill the consumer" button.
				usr1 := make(chan os.Signal, 1)
				signal.Notify(usr1, syscall.SIGUSR1)
				defer signal.Stop(usr1)
				kill := make(chan struct{})
				go func() { <-usr1; close(kill) }()
				w.KillMidBatch = kill
				fmt.Fprintln(w.Status, "ready") // the signal is handled from here on
			}
			ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = lab.RunWorker(ctx, w)
			if w.Follow && errors.Is(err, context.Canceled) {
				return nil // stopped, as a follower is
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&w.Role, "role", "", "auto-commit, greedy-auto-commit, commit-before, commit-after, dedup, eos, eos-stateful, saga-order, saga-inventory or saga-payment")
	f.StringVar(&w.Topic, "topic", "", "input topic")
	f.StringVar(&w.Output, "output", "", "output topic (eos)")
	f.StringVar(&w.Group, "group", "", "consumer group")
	f.StringVar(&w.Instance, "instance", "", "static group member id")
	f.StringVar(&w.Effects, "effects", "", "file recording processed records (eos-stateful and saga roles: the state directory)")
	f.IntVar(&w.KillAfter, "kill-after", 0, "SIGKILL this process after so many records (eos: produce batches)")
	f.BoolVar(&w.Follow, "follow", false, "keep consuming as records arrive until stopped (consumer roles)")
	f.BoolVar(&w.ReadCommitted, "read-committed", false, "consume with isolation.level=read_committed")
	f.BoolVar(&killOnSignal, "kill-mid-batch-on-signal", false, "on SIGUSR1, SIGKILL this process halfway through the next batch")
	f.BoolVar(&w.EffectLines, "effect-lines", false, "print \"effect PARTITION OFFSET ID\" per record processed")
	return cmd
}

// absPath makes a file name absolute, so a child process running in
// another directory finds it; "" stays "".
func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}

// serveSimulator serves the delivery simulator until interrupted.
// With cluster nodes (3), each session runs a cluster of them.
func serveSimulator(cmd *cobra.Command, addr string, cluster int) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("lab: find the weir binary: %w", err)
	}
	sim, err := simulator.New(exe, nil)
	if err != nil {
		return err
	}
	if cluster != 0 {
		if err := sim.UseCluster(cluster); err != nil {
			return fmt.Errorf("--cluster: %w", err)
		}
	}
	defer sim.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--ui-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/simulator", sim)
	mux.Handle("/simulator/", sim)
	mux.Handle("/{$}", http.RedirectHandler("/simulator", http.StatusSeeOther))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(cmd.OutOrStdout(), "weir lab: delivery simulator serving on http://%s/simulator\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
