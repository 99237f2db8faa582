package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-broker/weir/internal/metadata"
)

// Node is what the console asks of the broker it runs in.
type Node interface {
	// Ready reports whether the node serves its share of the cluster.
	Ready() (bool, string)
	// AbortTransaction aborts transactional id's open transaction under
	// the producer id and epoch begun at startMs (as DescribeTransactions
	// reports it) through its coordinator, and refuses with
	// INVALID_TXN_STATE when that transaction is no longer the open one.
	AbortTransaction(id string, producerID int64, epoch int16, startMs int64) error
	// ScramCredential is user's stored credential for a SCRAM mechanism.
	ScramCredential(user, mechanism string) (metadata.ScramCredential, bool)
	// Allowed reports whether principal at host may do op on a resource
	// under the ACLs in force.
	Allowed(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool
}

// Config configures a Console.
type Config struct {
	// NodeID is this node's id.
	NodeID int32
	// Node is the broker the console runs in.
	Node Node
	// Bootstrap is the host:port of a PLAINTEXT or SASL_PLAINTEXT
	// listener of this node, for the console's client; empty when the
	// node has none (the console then says so on every page).
	Bootstrap string
	// Login, when set, lists the SCRAM mechanisms of a SASL_PLAINTEXT
	// Bootstrap: every page asks for a user name and password (HTTP basic
	// authentication) and the console's client logs in with them, by the
	// first mechanism the user has a credential for.
	Login []string
	// Health, when set, gathers this node's health gauges (the broker's
	// Prometheus collector without its per-partition series), shown on
	// the cluster page as /metrics reports them.
	Health prometheus.Gatherer
	// Logger receives failures nobody sees on a page.
	Logger *slog.Logger
	// Hosts are the host names, besides IP addresses and localhost, that
	// requests to the console may name in their Host header (origin.go).
	Hosts []string
}

// requestTimeout bounds the Kafka requests one page makes.
const requestTimeout = 10 * time.Second

// Console serves the pages. It is an http.Handler.
type Console struct {
	cfg   Config
	mux   *http.ServeMux
	pages map[string]*template.Template

	mu     sync.Mutex
	shared *kgo.Client // the client without a login; nil until first used
}

// New returns the console for cfg.
func New(cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux(), pages: pages}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	c.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /{$}", c.page(c.cluster))
	c.mux.HandleFunc("GET /topics", c.page(c.topics))
	c.mux.HandleFunc("GET /topic", c.page(c.topic))
	c.mux.HandleFunc("POST /topic/abort", c.page(c.partitionAbort))
	c.mux.HandleFunc("GET /groups", c.page(c.groups))
	c.mux.HandleFunc("GET /group", c.page(c.group))
	c.mux.HandleFunc("POST /group/reset", c.page(c.groupReset))
	c.mux.HandleFunc("GET /transactions", c.page(c.transactions))
	c.mux.HandleFunc("POST /transactions/abort", c.page(c.abort))
	c.mux.HandleFunc("GET /records", c.page(c.records))
	return c, nil
}

// Close closes the console's client.
func (c *Console) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shared != nil {
		c.shared.Close()
		c.shared = nil
	}
}

// ServeHTTP serves a page. A request for a host name that is not the
// console's, and a POST that does not come from the console's own page,
// are refused (origin.go): a browser that can reach the console would
// otherwise carry out a form another site posts to it, or show another
// site its pages.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !c.hostAllowed(r.Host) {
		misdirected(w, r)
		return
	}
	if r.Method == http.MethodPost && !sameOrigin(r) {
		http.Error(w, "form refused: it was not posted from the console's own page (its Origin or Referer names another site, or neither is sent)", http.StatusForbidden)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// session is one request's view: its client and who is logged in.
type session struct {
	adm       *kadm.Client
	cl        *kgo.Client
	user      string
	pass      string
	mechanism string // the SCRAM mechanism of the login, or ""
	done      func()
}

// principal is who the broker takes the session's user for: the SCRAM
// user logged in, or User:ANONYMOUS, as the PLAINTEXT listener the
// console's client then uses takes every client for.
func (s *session) principal() string {
	if s.user == "" {
		return "User:ANONYMOUS"
	}
	return "User:" + s.user
}

// allowed checks, for what the console does in-process rather than
// through a Kafka request, that the session's principal, from the
// browser's host, may do op on the resource. The node allows everything
// when no authorizer is configured; with one, a console without a login
// acts as User:ANONYMOUS, never with more rights than a client of the
// same listener has.
func (c *Console) allowed(s *session, r *http.Request, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) error {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !c.cfg.Node.Allowed(s.principal(), host, op, rt, name) {
		return errDenied
	}
	return nil
}

// errNoListener is shown when the node has no listener the console can
// connect to.
var errNoListener = errors.New("this node has no PLAINTEXT or SASL_PLAINTEXT listener for the console to read the cluster through")

// errNoCredential is a login by a name that has no SCRAM credential.
var errNoCredential = errors.New("no SCRAM credential for this user")

// clientOpts are the options of every client the console makes; extra
// follow.
func (c *Console) clientOpts(s *session, extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.cfg.Bootstrap),
		kgo.ClientID("weir-console"),
		kgo.DialTimeout(5 * time.Second),
		kgo.RetryTimeout(requestTimeout),
	}
	if s.mechanism != "" {
		a := scram.Auth{User: s.user, Pass: s.pass}
		if s.mechanism == "SCRAM-SHA-256" {
			opts = append(opts, kgo.SASL(a.AsSha256Mechanism()))
		} else {
			opts = append(opts, kgo.SASL(a.AsSha512Mechanism()))
		}
	}
	return append(opts, extra...)
}

// open returns the session for r: the shared client without a login, a
// client of the request's user with one (closed when the page is done,
// so no password outlives the request).
func (c *Console) open(r *http.Request) (*session, error) {
	if c.cfg.Bootstrap == "" {
		return nil, errNoListener
	}
	s := &session{done: func() {}}
	if len(c.cfg.Login) > 0 {
		s.user, s.pass, _ = r.BasicAuth()
		for _, m := range c.cfg.Login {
			if _, ok := c.cfg.Node.ScramCredential(s.user, m); ok {
				s.mechanism = m
				break
			}
		}
		if s.mechanism == "" {
			return nil, errNoCredential
		}
		cl, err := kgo.NewClient(c.clientOpts(s)...)
		if err != nil {
			return nil, err
		}
		s.cl, s.done = cl, cl.Close
		s.adm = kadm.NewClient(cl)
		return s, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shared == nil {
		cl, err := kgo.NewClient(c.clientOpts(s)...)
		if err != nil {
			return nil, err
		}
		c.shared = cl
	}
	s.cl = c.shared
	s.adm = kadm.NewClient(c.shared)
	return s, nil
}

// view is what a page handler returns: the template to render and its
// data, or a redirect.
type view struct {
	name     string
	title    string
	data     any
	redirect string
}

// layout is what every page's template receives.
type layout struct {
	Title  string
	Nav    string
	NodeID int32
	User   string
	Data   any
	Error  string
}

// page wraps a handler: it opens the session, asks for a login where one
// is needed, renders the view or the error.
func (c *Console) page(h func(ctx context.Context, s *session, r *http.Request) (view, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(c.cfg.Login) > 0 && !c.validLogin(r) {
			askLogin(w)
			return
		}
		s, err := c.open(r)
		if errors.Is(err, errNoCredential) {
			askLogin(w)
			return
		}
		if err != nil {
			c.render(w, http.StatusServiceUnavailable, view{name: "error", title: "Unavailable"}, s, err)
			return
		}
		defer s.done()
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		v, err := h(ctx, s, r)
		if len(c.cfg.Login) > 0 && isAuthFailure(err) {
			askLogin(w)
			return
		}
		if err != nil {
			status := http.StatusBadGateway
			var bad badRequest
			switch {
			case errors.As(err, &bad):
				status = http.StatusBadRequest
			case isDenied(err):
				status = http.StatusForbidden
			case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.GroupIDNotFound), errors.Is(err, kerr.TransactionalIDNotFound):
				status = http.StatusNotFound
			case errors.Is(err, errGone), errors.Is(err, errHeld):
				status = http.StatusConflict
			}
			c.render(w, status, view{name: "error", title: "Error"}, s, err)
			return
		}
		if v.redirect != "" {
			http.Redirect(w, r, v.redirect, http.StatusSeeOther)
			return
		}
		c.render(w, http.StatusOK, v, s, nil)
	}
}

// askLogin asks the browser for the user's SCRAM name and password.
func askLogin(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="weir console (SCRAM user)", charset="UTF-8"`)
	http.Error(w, "log in as a SCRAM user", http.StatusUnauthorized)
}

// badRequest is an error in what the user asked for.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func badRequestf(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

func (c *Console) render(w http.ResponseWriter, status int, v view, s *session, err error) {
	t, ok := c.pages[v.name]
	if !ok {
		http.Error(w, "no page "+v.name, http.StatusInternalServerError)
		return
	}
	l := layout{Title: v.title, Nav: navOf(v.name), NodeID: c.cfg.NodeID, Data: v.data}
	if s != nil {
		l.User = s.user
	}
	if err != nil {
		l.Error = err.Error()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", l); err != nil {
		c.cfg.Logger.Warn("console page", "page", v.name, "err", err)
	}
}

func navOf(page string) string {
	switch page {
	case "topics", "topic", "records", "partabort":
		return "topics"
	case "groups", "group", "reset":
		return "groups"
	case "transactions", "abort":
		return "transactions"
	}
	return "cluster"
}
