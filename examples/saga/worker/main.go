// Command worker runs one instance of one of the saga's services (order,
// inventory or payment): a transactional id and a state directory of its
// own, its store's interactive query and metrics over HTTP. An order
// worker also writes the Tick records that move event time forward.
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

	"github.com/weir-broker/weir/examples/saga"
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
	service := flag.String("service", "", "the service to run: "+strings.Join(saga.Services, ", ")+" (required)")
	id := flag.String("id", "", "this instance's id: its transactional id and group instance id (required)")
	stateDir := flag.String("state", "", "this instance's state directory (required)")
	httpAddr := flag.String("http", "", "address to serve GET /stores/STORE/KEY and /metrics on")
	orderTimeout := flag.Duration("order-timeout", 10*time.Second, "order service: event time after its placement by which an order must be terminal")
	tick := flag.Duration("tick", 500*time.Millisecond, "order service: interval of the Tick records that advance event time")
	maxSkew := flag.Duration("max-clock-skew", saga.DefaultMaxClockSkew, "order service: how far ahead of this worker's clock a record's timestamp may be and still advance event time")
	flag.Parse()
	if *id == "" || *stateDir == "" || *service == "" {
		return errors.New("--service, --id and --state are required")
	}
	switch {
	case *orderTimeout <= 0:
		return fmt.Errorf("--order-timeout must be positive, not %s", *orderTimeout)
	case *tick <= 0:
		return fmt.Errorf("--tick must be positive, not %s", *tick)
	case *maxSkew < 0:
		return fmt.Errorf("--max-clock-skew must not be negative, not %s", *maxSkew)
	}
	sc, err := saga.Service(*service, *orderTimeout)
	if err != nil {
		return err
	}
	if *service == "order" {
		sc.Process = saga.OrderServiceWithSkew(*orderTimeout, *maxSkew)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	p, err := eos.NewStateful(eos.Config{
		Brokers:         strings.Split(*brokers, ","),
		TransactionalID: *id,
		Group:           sc.Group,
		InputTopics:     []string{sc.Input},
		OutputTopic:     sc.Output,
		MaxPerTxn:       100,
		TxnTimeout:      20 * time.Second,
		Store:           sc.Store,
		StateDir:        *stateDir,
		Registerer:      reg,
		// Static membership (KIP-345): a restarted instance takes its
		// partitions back without a rebalance.
		ClientOpts: append([]kgo.Opt{kgo.InstanceID(*id), kgo.SessionTimeout(10 * time.Second)}, sc.ClientOpts...),
	}, sc.Process)
	if err != nil {
		return err
	}
	defer p.Close()
	if *service == "order" {
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return err
		}
		defer cl.Close()
		go saga.RunTicker(ctx, cl, *tick)
	}
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
	slog.Info("saga worker running", "service", *service, "id", *id)
	return p.Run(ctx)
}
