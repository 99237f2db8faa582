// Package weir starts a real, durable Weir broker inside a Go program or
// test: the same broker `weir serve` runs, on a listener and data
// directory of the caller's choosing.
//
//	b, err := weir.Start(ctx, weir.Config{DataDir: t.TempDir()})
//	...
//	client, _ := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
//	defer b.Close()
package weir

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/weir-broker/weir/internal/broker"
	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/server"
)

// Config configures an embedded broker.
type Config struct {
	// Listen is the host:port to listen on; "127.0.0.1:0" (any free port)
	// when empty.
	Listen string
	// DataDir holds the logs; required.
	DataDir string
	// Settings are broker configs by their Kafka names
	// (log.retention.ms, num.partitions, …).
	Settings map[string]string
	// Broker, when set, is used as is instead of Settings.
	Broker *config.Broker
	// Logger receives the broker's logs; discarded when nil.
	Logger *slog.Logger
	// Faults, when set, injects faults (see internal/faults): for tests
	// and the lab, never for production.
	Faults *faults.Injector
}

// Broker is a running broker.
type Broker struct {
	b         *broker.Broker
	srv       *server.Server
	closeOnce sync.Once
	closeErr  error
}

// Start opens the data directory (recovering it after a crash), listens
// and serves until Close. ctx bounds only the start.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("weir: DataDir is required")
	}
	settings := cfg.Broker
	if settings == nil {
		settings = config.NewBroker()
		for k, v := range cfg.Settings {
			if err := settings.Set(k, v); err != nil {
				return nil, fmt.Errorf("weir: %w", err)
			}
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("weir: listen: %w", err)
	}
	b, err := broker.Open(broker.Config{
		NodeID:   int32(settings.Int("node.id")),
		DataDir:  cfg.DataDir,
		Settings: settings,
		Logger:   logger,
		Faults:   cfg.Faults,
		Abort:    ctx.Done(),
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("weir: %w", err)
	}
	host, port, err := advertised(settings.Get("advertised.listeners"), ln.Addr())
	if err != nil {
		b.Close()
		ln.Close()
		return nil, fmt.Errorf("weir: %w", err)
	}
	b.SetAdvertised(host, port)
	srv := server.New(ln, b, server.Limits{
		MaxFrameBytes:   int32(settings.Int("socket.request.max.bytes")),
		MaxConnections:  int(settings.Int("max.connections")),
		MaxInflightReqs: int(settings.Int("queued.max.requests")),
	}, logger, cfg.Faults)
	logger.Info("weir serving", "addr", ln.Addr().String(), "data", cfg.DataDir)
	return &Broker{b: b, srv: srv}, nil
}

// advertised picks the address clients are told to use: the
// advertised.listeners setting (PLAINTEXT://host:port or host:port) or
// the listener's own address.
func advertised(setting string, addr net.Addr) (string, int32, error) {
	hostport := addr.String()
	if setting != "" {
		first := strings.Split(setting, ",")[0]
		if i := strings.Index(first, "://"); i >= 0 {
			first = first[i+3:]
		}
		hostport = first
	}
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("advertised.listeners %q: %w", setting, err)
	}
	port, err := strconv.ParseInt(portStr, 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("advertised.listeners %q: bad port", setting)
	}
	return host, int32(port), nil
}

// Addr is the host:port clients connect to.
func (b *Broker) Addr() string { return b.srv.Addr().String() }

// Close stops serving, then flushes and closes every log. In a cluster it
// first runs a controlled shutdown while still serving: the controller
// moves this node's partition leaderships away (KIP-631). Later calls
// return the first call's result.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.b.ControlledShutdown()
		b.b.BeginShutdown()
		b.closeErr = b.srv.Close()
		if err := b.b.Close(); b.closeErr == nil {
			b.closeErr = err
		}
	})
	return b.closeErr
}
