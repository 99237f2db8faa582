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
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-broker/weir/internal/broker"
	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/metrics"
	"github.com/weir-broker/weir/internal/security"
	"github.com/weir-broker/weir/internal/server"
)

// Config configures an embedded broker.
type Config struct {
	// Listen, when set, is the listeners setting: host:port, or
	// NAME://host:port,... (KIP-103). When empty the listeners setting
	// is used if set, else "127.0.0.1:0" (any free port).
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
	// AdminListen, when set, is the admin listener's host:port (metrics,
	// health, profiling); the admin.listeners setting when empty.
	// AdminBestEffort lets the broker start without it when the address
	// is taken (the default address of `weir serve`).
	AdminListen     string
	AdminBestEffort bool
	// AdminHandlers are served on the admin listener beside the built-in
	// endpoints, by ServeMux pattern: `weir serve` mounts the delivery
	// simulator (internal/simulator) there.
	AdminHandlers map[string]http.Handler
}

// Broker is a running broker.
type Broker struct {
	b         *broker.Broker
	srvs      []*server.Server // one per listener, in listeners' order
	bound     []config.Listener
	stopWatch context.CancelFunc // stops reloading the TLS files; nil without TLS
	admin     *adminServer       // nil without an admin listener
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
	if cfg.Listen != "" {
		if err := settings.Set("listeners", cfg.Listen); err != nil {
			return nil, fmt.Errorf("weir: %w", err)
		}
	} else if !settings.IsSet("listeners") {
		if err := settings.Set("listeners", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("weir: %w", err)
		}
	}
	ls, err := settings.Listeners()
	if err != nil {
		return nil, fmt.Errorf("weir: %w", err)
	}
	var tlsConf *security.TLS
	for _, l := range ls {
		if l.TLS() && tlsConf == nil {
			if tlsConf, err = security.NewTLS(settings, logger); err != nil {
				return nil, fmt.Errorf("weir: listener %s: %w", l.Name, err)
			}
		}
	}
	rules, err := config.ParsePrincipalRules(settings.Get("ssl.principal.mapping.rules"))
	if err != nil {
		return nil, fmt.Errorf("weir: ssl.principal.mapping.rules: %w", err)
	}
	bound, nls, err := bind(ctx, ls, tlsConf)
	if err != nil {
		return nil, fmt.Errorf("weir: %w", err)
	}
	closeAll := func() {
		for _, ln := range nls {
			ln.Close()
		}
	}
	interBroker := settings.InterBrokerListener(ls)
	var peerDial func(context.Context, string, string) (net.Conn, error)
	if ib := ls[indexOf(ls, interBroker)]; ib.TLS() {
		peerDial = tlsConf.Dialer(settings.Get("ssl.endpoint.identification.algorithm") == "https")
	}
	peerSASL, err := interBrokerSASL(settings, ls[indexOf(ls, interBroker)])
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("weir: %w", err)
	}
	m := metrics.New()
	b, err := broker.Open(broker.Config{
		NodeID:    int32(settings.Int("node.id")),
		DataDir:   cfg.DataDir,
		Settings:  settings,
		Logger:    logger,
		Faults:    cfg.Faults,
		PeerDial:  peerDial,
		PeerSASL:  peerSASL,
		Abort:     ctx.Done(),
		OnLogSync: m.LogSync,
	})
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("weir: %w", err)
	}
	adv, err := settings.Advertised(bound)
	if err != nil {
		b.Close()
		closeAll()
		return nil, fmt.Errorf("weir: %w", err)
	}
	b.SetListeners(adv, interBroker)
	warnIfFewFileDescriptors(logger, int(settings.Int("max.connections")))
	limits := server.Limits{
		MaxFrameBytes:   int32(settings.Int("socket.request.max.bytes")),
		MaxConnections:  int(settings.Int("max.connections")),
		MaxInflightReqs: int(settings.Int("queued.max.requests")),
	}
	wb := &Broker{b: b, bound: bound}
	m.Registry.MustRegister(b.Collector(settings.Bool("metrics.partition.enable")))
	for i, ln := range nls {
		sl := server.Listener{Name: bound[i].Name, Principal: principalOf(rules), Observer: m}
		if bound[i].SASL() {
			if sl.SASL, err = authenticator(settings, bound[i], b.ScramCredential); err != nil {
				b.Close()
				closeAll()
				return nil, fmt.Errorf("weir: %w", err)
			}
			sl.Auth = server.SASLSettings{
				Reauth:       time.Duration(settings.Int("connections.max.reauth.ms")) * time.Millisecond,
				FailureDelay: time.Duration(settings.Int("connection.failed.authentication.delay.ms")) * time.Millisecond,
				Timeout:      saslTimeout,
				MaxReceive:   int32(settings.Int("sasl.server.max.receive.size")),
			}
		}
		wb.srvs = append(wb.srvs, server.NewListener(ln, sl, b, limits, logger, cfg.Faults))
	}
	if tlsConf != nil {
		watchCtx, stop := context.WithCancel(context.Background())
		wb.stopWatch = stop
		go tlsConf.Watch(watchCtx)
	}
	for _, l := range bound {
		logger.Info("weir serving", "listener", l.Name, "protocol", l.Protocol, "addr", l.Addr(), "data", cfg.DataDir)
	}
	adminAddr := cfg.AdminListen
	if adminAddr == "" {
		adminAddr = settings.Get("admin.listeners")
	}
	if adminAddr != "" {
		a, err := startAdmin(adminAddr, m, b, consoleConfig(settings, bound, adminAddr, b, logger), cfg.Faults, cfg.AdminHandlers, logger)
		switch {
		case err == nil:
			wb.admin = a
			logger.Info("admin listener serving", "addr", a.ln.Addr().String(), "endpoints", "/ (console) /metrics /healthz /readyz /debug/pprof/")
		case cfg.AdminBestEffort:
			logger.Warn("admin listener not started: metrics and health are not served", "addr", adminAddr, "err", err)
		default:
			wb.Close()
			return nil, fmt.Errorf("weir: admin listener %s: %w", adminAddr, err)
		}
	}
	return wb, nil
}

// bind listens on each listener, TLS ones through t, and returns them
// with their bound addresses (a port 0 becomes the port picked).
func bind(ctx context.Context, ls []config.Listener, t *security.TLS) ([]config.Listener, []net.Listener, error) {
	var lc net.ListenConfig
	bound := make([]config.Listener, 0, len(ls))
	var nls []net.Listener
	for _, l := range ls {
		ln, err := lc.Listen(ctx, "tcp", l.Addr())
		if err != nil {
			for _, o := range nls {
				o.Close()
			}
			return nil, nil, fmt.Errorf("listen on %s (%s): %w", l.Addr(), l.Name, err)
		}
		if l.Host == "" || net.ParseIP(l.Host).IsUnspecified() {
			// A wildcard listener without an advertised address is
			// advertised at the loopback address: dialable from this
			// machine, and advertised.listeners says what others dial.
			l.Host = "127.0.0.1"
		}
		l.Port = int32(ln.Addr().(*net.TCPAddr).Port)
		if l.TLS() {
			ln = tls.NewListener(ln, t.Server())
		}
		bound = append(bound, l)
		nls = append(nls, ln)
	}
	return bound, nls, nil
}

// saslTimeout is how long a client of a SASL listener has to
// authenticate before its connection is closed.
const saslTimeout = 10 * time.Second

// authenticator serves l's SASL mechanisms: sasl.enabled.mechanisms,
// less PLAIN on a listener without TLS unless sasl.plain.allow.plaintext
// says otherwise.
func authenticator(settings *config.Broker, l config.Listener, lookup security.Lookup) (*security.Authenticator, error) {
	var mechs []string
	for _, m := range strings.Split(settings.Get("sasl.enabled.mechanisms"), ",") {
		m = strings.TrimSpace(m)
		if m == security.Plain && !l.TLS() && !settings.Bool("sasl.plain.allow.plaintext") {
			continue
		}
		if m != "" {
			mechs = append(mechs, m)
		}
	}
	a, err := security.NewAuthenticator(mechs, lookup)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w (PLAIN is offered without TLS only with sasl.plain.allow.plaintext=true)", l.Name, err)
	}
	return a, nil
}

// interBrokerSASL is how this node authenticates to its peers when the
// inter-broker listener l of a cluster is a SASL one:
// sasl.mechanism.inter.broker.protocol with the credentials of
// sasl.jaas.config. A single node has no peers and needs none.
func interBrokerSASL(settings *config.Broker, l config.Listener) (sasl.Mechanism, error) {
	if q, err := settings.Quorum(); err != nil || !q.Enabled() || !l.SASL() {
		return nil, nil
	}
	user, pass, err := security.JAASCredentials(settings.Get("sasl.jaas.config"))
	if err != nil {
		return nil, fmt.Errorf("inter-broker listener %s is %s, so this node needs its own credentials: %w", l.Name, l.Protocol, err)
	}
	switch settings.Get("sasl.mechanism.inter.broker.protocol") {
	case security.Plain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case security.ScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	default:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
}

// principalOf names a TLS client from its certificate's subject by the
// ssl.principal.mapping.rules; a client without a certificate is
// anonymous.
func principalOf(rules config.PrincipalRules) func(*x509.Certificate) (string, error) {
	return func(cert *x509.Certificate) (string, error) {
		if cert == nil {
			return server.Anonymous, nil
		}
		subject := security.SubjectOf(cert)
		name, ok := rules.Map(subject)
		if !ok {
			return "", fmt.Errorf("no rule of ssl.principal.mapping.rules matches the certificate subject %q", subject)
		}
		return "User:" + name, nil
	}
}

// indexOf is the position of the listener named name (checked to exist
// by config.Broker.Listeners).
func indexOf(ls []config.Listener, name string) int {
	for i, l := range ls {
		if l.Name == name {
			return i
		}
	}
	return 0
}

// Addr is the host:port clients of the first listener connect to.
func (b *Broker) Addr() string { return b.srvs[0].Addr().String() }

// ListenerAddr is the bound host:port of the named listener, or "" when
// there is no such listener.
func (b *Broker) ListenerAddr(name string) string {
	for i, l := range b.bound {
		if l.Name == name {
			return b.srvs[i].Addr().String()
		}
	}
	return ""
}

// AdminAddr is the admin listener's bound address, or "" without one.
func (b *Broker) AdminAddr() string {
	if b.admin == nil {
		return ""
	}
	return b.admin.ln.Addr().String()
}

// Listeners are the broker's listeners with the addresses they are bound
// to.
func (b *Broker) Listeners() []config.Listener { return append([]config.Listener(nil), b.bound...) }

// Close stops serving, then flushes and closes every log. In a cluster it
// first runs a controlled shutdown while still serving: the controller
// moves this node's partition leaderships away (KIP-631). Later calls
// return the first call's result.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.b.ControlledShutdown()
		b.b.BeginShutdown()
		if b.stopWatch != nil {
			b.stopWatch()
		}
		if b.admin != nil {
			b.admin.close()
		}
		for _, srv := range b.srvs {
			if err := srv.Close(); b.closeErr == nil {
				b.closeErr = err
			}
		}
		if err := b.b.Close(); b.closeErr == nil {
			b.closeErr = err
		}
	})
	return b.closeErr
}
