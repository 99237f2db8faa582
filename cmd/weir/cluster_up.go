package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/internal/devcluster"
)

func newClusterUpCommand() *cobra.Command {
	var (
		opts        devcluster.Options
		wait, grace time.Duration
	)
	cmd := &cobra.Command{
		Use:   "up N",
		Short: "Run a local development cluster of N nodes until Ctrl-C",
		Long: fmt.Sprintf(`Run a local cluster of N nodes (1 to %d) in one command: N child
'weir serve' processes, every node a broker and a voter of the metadata
quorum. Node K keeps its data in DIR/nodeK/data and writes its log to
DIR/nodeK/weir.log; it listens for Kafka clients on --base-port+K-1 and
for the quorum on --controller-base-port+K-1 (by default --base-port+%d).

Once every node names the same active controller and lists all N brokers,
the bootstrap address is printed. Ctrl-C (SIGINT or SIGTERM) stops every
node with SIGTERM, then SIGKILL for any still running after --stop-timeout.
The data stays: running the command again with the same N and --dir
starts the same cluster.`, devcluster.MaxNodes, devcluster.DefaultControllerPortOffset),
		Example: "  weir cluster up 3\n  weir cluster up 1 --dir /tmp/weir-dev --base-port 19092",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%s: want the number of nodes N, got %d argument(s)", cmd.CommandPath(), len(args))
			}
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return fmt.Errorf("%s: N must be a number of nodes from 1 to %d, not %q", cmd.CommandPath(), devcluster.MaxNodes, args[0])
			}
			opts.Nodes = n
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := devcluster.NewPlan(opts)
			if err != nil {
				return err
			}
			if wait <= 0 || grace <= 0 {
				return errors.New("--wait and --stop-timeout must be positive")
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the weir binary to run the nodes: %w", err)
			}
			return runClusterUp(cmd, plan, exe, wait, grace)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", "./weir-cluster", "directory of the nodes' data and logs")
	f.StringVar(&opts.Host, "host", "127.0.0.1", "address every node listens on and advertises")
	f.IntVar(&opts.BasePort, "base-port", 9092, "node 1's Kafka port; node K listens on base-port+K-1")
	f.IntVar(&opts.ControllerBasePort, "controller-base-port", 0,
		fmt.Sprintf("node 1's controller (quorum) port; 0: base-port+%d", devcluster.DefaultControllerPortOffset))
	f.DurationVar(&wait, "wait", 60*time.Second, "how long to wait for a controller and every broker")
	f.DurationVar(&grace, "stop-timeout", 15*time.Second, "how long nodes have to stop cleanly before SIGKILL")
	return cmd
}

func runClusterUp(cmd *cobra.Command, plan *devcluster.Plan, exe string, wait, grace time.Duration) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	// Signals are caught before the first node starts, so none can end
	// this process and leave nodes behind.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigc)

	c, err := devcluster.Start(plan, exe)
	if err != nil {
		return err
	}
	stop := func() {
		fmt.Fprintf(out, "stopping %s (Ctrl-C again to kill them at once)\n", nodes(len(plan.Nodes)))
		hurry, stopped := make(chan struct{}), make(chan struct{})
		defer close(stopped)
		go func() {
			select {
			case <-sigc:
				close(hurry)
			case <-stopped:
			}
		}()
		if killed := c.Stop(grace, hurry); len(killed) > 0 {
			fmt.Fprintf(errOut, "killed nodes %v: they had not stopped\n", killed)
		}
		fmt.Fprintln(out, "stopped; the data stays in", plan.Dir)
	}
	fmt.Fprintf(out, "starting %s in %s\n", nodes(len(plan.Nodes)), plan.Dir)

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ready := make(chan error, 1)
	var ctrl int32
	go func() {
		var err error
		ctrl, err = c.WaitReady(ctx)
		ready <- err
	}()
	select {
	case sig := <-sigc:
		cancel()
		<-ready
		fmt.Fprintf(out, "%v before the cluster was ready\n", sig)
		stop()
		return nil
	case err := <-ready:
		if err != nil {
			stop()
			return err
		}
	}

	pids := c.PIDs()
	for i, n := range plan.Nodes {
		fmt.Fprintf(out, "node %d  pid %d  kafka %s  controller %s  log %s\n", n.ID, pids[i], n.Addr, n.ControllerAddr, n.LogPath)
	}
	fmt.Fprintf(out, "active controller: node %d\n", ctrl)
	fmt.Fprintf(out, "bootstrap: %s\n", plan.Bootstrap())
	fmt.Fprintf(out, "try: weir cluster describe --brokers %s\n", plan.Bootstrap())
	fmt.Fprintln(out, "stop with Ctrl-C (SIGINT or SIGTERM); the data stays for the next run")

	for {
		select {
		case sig := <-sigc:
			fmt.Fprintf(out, "%v received\n", sig)
			stop()
			return nil
		case i := <-c.Down():
			fmt.Fprintln(errOut, c.Exited(i))
			if c.Running() == 0 {
				stop()
				return errors.New("every node has exited")
			}
		}
	}
}

func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return strconv.Itoa(n) + " nodes"
}
