package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/simulator"
	"github.com/weir-broker/weir/pkg/weir"
)

func newServeCommand() *cobra.Command {
	var (
		listen, dataDir, propsFile, logLevel, faultSpec string
		adminListen                                     string
		controllerListen, voters                        string
		sets                                            []string
		faultSeed                                       int64
		nodeID                                          int32
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a broker, alone or as a node of a cluster",
		Long: `Run a broker. With no flags it is a single node: it listens on
127.0.0.1:9092 and keeps its data in ./weir-data.

With --voters it is a node of a cluster whose metadata is replicated by a
Raft quorum of the listed voters (controller.quorum.voters); each voter
gives its own --node-id and --controller-listen address:

  weir serve --node-id 2 --listen 127.0.0.1:9093 --data d2 \
    --controller-listen 127.0.0.1:9192 \
    --voters 1@127.0.0.1:9191,2@127.0.0.1:9192,3@127.0.0.1:9193

--listen takes Kafka's listener form too, several at once:

  weir serve --listen PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9093 \
    --set ssl.keystore.location=server.pem

Settings use Kafka's config names. They come from a properties file
(--config), then WEIR_* environment variables (WEIR_LOG_RETENTION_MS for
log.retention.ms), then --set name=value and the flags below; later wins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			settings := config.NewBroker()
			if propsFile != "" {
				if err := settings.LoadFile(propsFile); err != nil {
					return err
				}
			}
			if err := settings.LoadEnv(os.Environ()); err != nil {
				return err
			}
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--set %q: expected name=value", kv)
				}
				if err := settings.Set(k, v); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("listen") || !settings.IsSet("listeners") {
				if err := settings.Set("listeners", listen); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("data") || !settings.IsSet("log.dirs") {
				if err := settings.Set("log.dirs", dataDir); err != nil {
					return err
				}
			}
			for _, f := range []struct{ flag, name, value string }{
				{"node-id", "node.id", fmt.Sprint(nodeID)},
				{"controller-listen", "controller.listeners", controllerListen},
				{"voters", "controller.quorum.voters", voters},
			} {
				if cmd.Flags().Changed(f.flag) {
					if err := settings.Set(f.name, f.value); err != nil {
						return fmt.Errorf("--%s: %w", f.flag, err)
					}
				}
			}
			if _, err := settings.Quorum(); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: use debug, info, warn or error", logLevel)
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			var inj *faults.Injector
			if faultSpec != "" {
				var err error
				if inj, err = faults.Parse(faultSpec, faultSeed); err != nil {
					return fmt.Errorf("--unsafe-faults: %w", err)
				}
				logger.Warn("fault injection is on: this broker will lose, delay or break responses on purpose", "spec", faultSpec, "seed", faultSeed)
			}

			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if _, err := settings.Listeners(); err != nil {
				return err
			}
			wc := weir.Config{DataDir: settings.Get("log.dirs"), Broker: settings, Logger: logger, Faults: inj}
			// The delivery simulator runs sessions of its own (a broker
			// child each, this binary); it does not touch this broker.
			exe, _ := os.Executable()
			sim, err := simulator.New(exe, logger)
			if err != nil {
				return err
			}
			defer sim.Close()
			if ls, err := settings.Listeners(); err == nil {
				for _, l := range ls {
					if l.SASL() {
						// Sessions start processes on this machine; the
						// console's logins do not extend to them.
						sim.Disable("The simulator runs no sessions on a broker with SASL listeners (security on): run `weir lab --ui` instead.")
						break
					}
				}
			}
			wc.AdminHandlers = map[string]http.Handler{"/simulator": sim, "/simulator/": sim}
			switch {
			case cmd.Flags().Changed("admin-listen"):
				wc.AdminListen = adminListen
			case !settings.IsSet("admin.listeners"):
				// The default address: a second broker on this machine
				// finds it taken and starts without metrics.
				wc.AdminListen, wc.AdminBestEffort = adminListen, true
			}
			b, err := weir.Start(ctx, wc)
			if err != nil {
				return err
			}
			var addrs []string
			for _, l := range b.Listeners() {
				if l.Name == config.Plaintext {
					addrs = append(addrs, l.Addr())
				} else {
					addrs = append(addrs, l.Name+"://"+l.Addr())
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "weir serving on %s, data in %s\n", strings.Join(addrs, ", "), settings.Get("log.dirs"))
			<-ctx.Done()
			logger.Info("shutting down")
			return b.Close()
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9092", "host:port, or NAME://host:port,... with NAME in listener.security.protocol.map (listeners)")
	cmd.Flags().StringVar(&dataDir, "data", "./weir-data", "data directory (log.dirs)")
	cmd.Flags().StringVar(&adminListen, "admin-listen", "127.0.0.1:9644", "host:port of the admin listener: the web console at /, /metrics, /healthz, /readyz, /debug/pprof/ (admin.listeners)")
	cmd.Flags().Int32Var(&nodeID, "node-id", 1, "this node's id (node.id)")
	cmd.Flags().StringVar(&controllerListen, "controller-listen", "", "host:port the metadata quorum listens on (controller.listeners)")
	cmd.Flags().StringVar(&voters, "voters", "", "the metadata quorum as id@host:port,... (controller.quorum.voters)")
	cmd.Flags().StringVar(&propsFile, "config", "", "properties file with Kafka config names")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "a config as name=value (repeatable)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&faultSpec, "unsafe-faults", "", "inject faults for tests, e.g. produce.response=drop@0.1 (never in production)")
	cmd.Flags().Int64Var(&faultSeed, "unsafe-faults-seed", 1, "seed of the fault schedule")
	return cmd
}
