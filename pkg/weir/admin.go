package weir

// The admin listener: Prometheus metrics (/metrics), liveness (/healthz),
// readiness (/readyz), the Go profiler (/debug/pprof/), the web
// console (/, internal/console) and what Config.AdminHandlers adds (the
// delivery simulator at /simulator, in `weir serve`), over HTTP on an address of its own,
// apart from the Kafka listeners.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weir-broker/weir/internal/broker"
	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/console"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/metrics"
	"github.com/weir-broker/weir/internal/security"
)

// adminServer serves the admin endpoints.
type adminServer struct {
	srv     *http.Server
	ln      net.Listener
	console *console.Console
}

func startAdmin(addr string, m *metrics.Metrics, b *broker.Broker, cc console.Config, inj *faults.Injector, extra map[string]http.Handler, logger *slog.Logger) (*adminServer, error) {
	con, err := console.New(cc)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", con)
	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	// /metrics names every topic and group: where security is on it asks
	// for a SCRAM login as the console does (Prometheus scrapes with
	// basic_auth), see console.RequireLogin.
	mux.Handle("/metrics", con.RequireLogin(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)})))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready, why := b.Ready(); !ready {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if inj != nil {
		// Only a broker started with --unsafe-faults has this: it adds
		// rules to the running injector, so that a fault can be injected
		// at the moment a person (the delivery simulator) chooses.
		mux.HandleFunc("GET /unsafe/faults", func(w http.ResponseWriter, r *http.Request) {
			// How often the rules at a point have fired since the start.
			fmt.Fprintln(w, inj.Fired(r.URL.Query().Get("point")))
		})
		mux.Handle("POST /unsafe/faults", con.SameHost(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Programs (the simulator's sessions) post here; a browser
			// always says where its page came from, and no page may
			// add a fault: another site could otherwise make the
			// broker drop answers or exit.
			if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
				http.Error(w, "fault rules are not taken from a web page", http.StatusForbidden)
				return
			}
			spec, err := io.ReadAll(io.LimitReader(r.Body, 4096))
			if err == nil {
				err = inj.Add(string(spec))
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			logger.Warn("fault rules added", "spec", string(spec))
			fmt.Fprintln(w, "ok")
		})))
	}
	// The profiler shows the broker's internals (goroutine stacks, the
	// command line): the login of the console, its host check, and a
	// command line with its secrets hidden.
	profiler := func(h http.HandlerFunc) http.Handler { return con.SameHost(con.RequireLogin(h)) }
	mux.Handle("/debug/pprof/", profiler(pprof.Index))
	mux.Handle("/debug/pprof/cmdline", profiler(redactedCmdline))
	mux.Handle("/debug/pprof/profile", profiler(pprof.Profile))
	mux.Handle("/debug/pprof/symbol", profiler(pprof.Symbol))
	mux.Handle("/debug/pprof/trace", profiler(pprof.Trace))
	a := &adminServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, console: con}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener", "err", err)
		}
	}()
	return a, nil
}

func (a *adminServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
	a.console.Close()
}

// consoleConfig points the console at a listener of this node it can
// reach without TLS. With any SASL listener, security is on: the console
// uses a SASL_PLAINTEXT one and asks every user to log in as a SCRAM
// user, so the broker applies that user's ACLs to what the console does.
//
// The console answers to the host names this node is known by (besides IP
// addresses and localhost): the admin listener's, the listeners' and the
// advertised listeners' hosts, and the machine's name.
func consoleConfig(settings *config.Broker, bound []config.Listener, adminAddr string, b *broker.Broker, logger *slog.Logger) console.Config {
	health := prometheus.NewRegistry()
	health.MustRegister(b.Collector(false))
	cc := console.Config{NodeID: int32(settings.Int("node.id")), Node: b, Health: health, Logger: logger}
	names := append([]config.Listener(nil), bound...)
	if advertised, err := settings.Advertised(bound); err == nil {
		names = append(names, advertised...)
	}
	if host, _, err := net.SplitHostPort(adminAddr); err == nil {
		names = append(names, config.Listener{Host: host})
	}
	if host, err := os.Hostname(); err == nil {
		names = append(names, config.Listener{Host: host})
	}
	for _, l := range names {
		if l.Host != "" && net.ParseIP(l.Host) == nil {
			cc.Hosts = append(cc.Hosts, l.Host)
		}
	}
	secured := false
	for _, l := range bound {
		secured = secured || l.SASL()
	}
	for _, l := range bound {
		if l.TLS() || l.SASL() != secured {
			continue
		}
		host := l.Host
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		cc.Bootstrap = net.JoinHostPort(host, strconv.Itoa(int(l.Port)))
		break
	}
	if secured {
		for _, m := range strings.Split(settings.Get("sasl.enabled.mechanisms"), ",") {
			if m = strings.TrimSpace(m); m == security.ScramSHA512 || m == security.ScramSHA256 {
				cc.Login = append(cc.Login, m)
			}
		}
		if len(cc.Login) == 0 {
			cc.Bootstrap = "" // no SCRAM: the console cannot log a user in
		}
	}
	return cc
}
