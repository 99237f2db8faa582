// Command worker runs one instance of the inventory aggregator: a
// transactional id and a state directory of its own, the stock store's
// interactive query and metrics over HTTP.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/inventory"
	"github.com/weir-broker/weir/pkg/eos"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	id := flag.String("id", "", "this instance's id: its transactional id and group instance id (required)")
	stateDir := flag.String("state", "", "this instance's state directory (required)")
	httpAddr := flag.String("http", "", "address to serve GET /stores/stock/ITEM and /metrics on")
	flag.Parse()
	if *id == "" || *stateDir == "" {
		return errors.New("--id and --state are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	p, err := eos.NewStateful(eos.Config{
		Brokers:         strings.Split(*brokers, ","),
		TransactionalID: *id,
		Group:           inventory.Group,
		InputTopics:     []string{inventory.EventsTopic},
		OutputTopic:     inventory.StockTopic,
		MaxPerTxn:       100,
		TxnTimeout:      20 * time.Second,
		Store:           inventory.StoreName,
		StateDir:        *stateDir,
		Registerer:      reg,
		// Static membership (KIP-345): a restarted instance takes its
		// partitions back without a rebalance or a wait for its old
		// session to expire.
		ClientOpts: []kgo.Opt{kgo.InstanceID(*id), kgo.SessionTimeout(10 * time.Second)},
	}, inventory.Stock)
	if err != nil {
		return err
	}
	defer p.Close()
	if *httpAddr != "" {
		l, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/stores/", p.QueryHandler())
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
	}
	slog.Info("inventory worker running", "id", *id)
	return p.Run(ctx)
}
