package simulator

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/weir-broker/weir/internal/lab"
)

//go:embed templates/*.html static/*
var assets embed.FS

// csp allows nothing from another origin and no inline script or style.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"

// Simulator serves the simulator's page and runs one session at a time.
type Simulator struct {
	exe    string
	logger *slog.Logger
	page   *template.Template
	mux    *http.ServeMux

	// off, when set, says why this server runs no sessions.
	off string
	// cluster is the node count of every session (0: one broker).
	cluster int

	mu      sync.Mutex
	session *lab.Session
	last    lab.SimSettings
	busy    bool // a session is starting or stopping
}

// New returns a simulator whose sessions run exe (the weir binary) as
// broker and consumer worker. An empty exe serves a page saying that
// sessions cannot run here.
func New(exe string, logger *slog.Logger) (*Simulator, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	page, err := template.ParseFS(assets, "templates/simulator.html")
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	off := ""
	if exe == "" {
		off = "This server has no weir binary to run sessions with."
	}
	s := &Simulator{exe: exe, off: off, logger: logger, page: page, mux: http.NewServeMux(),
		last: lab.SimSettings{Acks: "all", Retries: true, Idempotent: true, MaxInFlight: 5, Commit: "after", ReadCommitted: true, Seed: 1}}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	s.mux.Handle("GET /simulator/static/", http.StripPrefix("/simulator/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /simulator", s.show)
	s.mux.HandleFunc("GET /simulator/state", s.state)
	s.mux.HandleFunc("POST /simulator/start", s.start)
	s.mux.HandleFunc("POST /simulator/fault/{kind}", s.fault)
	s.mux.HandleFunc("POST /simulator/stop", s.stop)
	return s, nil
}

// Disable keeps the page but refuses to start sessions, saying why; call
// it before serving.
func (s *Simulator) Disable(why string) { s.off = why }

// UseCluster makes every session run a cluster of nodes (3) instead of
// one broker, with the faults that act on its nodes; call it before
// serving.
func (s *Simulator) UseCluster(nodes int) error {
	st := s.last
	st.Cluster = nodes
	if err := st.Validate(); err != nil {
		return err
	}
	s.cluster, s.last = nodes, st
	return nil
}

// ServeHTTP serves the simulator. POSTs from another origin are refused:
// a session starts processes on this machine.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodPost {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || u.Host != r.Host {
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
		}
	}
	s.mux.ServeHTTP(w, r)
}

// Close ends the running session, if any.
func (s *Simulator) Close() {
	s.mu.Lock()
	ss := s.session
	s.session = nil
	s.mu.Unlock()
	if ss != nil {
		ss.Close()
	}
}

// pageData is what the template shows.
type pageData struct {
	Settings lab.SimSettings
	Faults   []faultButton
	Off      string
	Records  int
	Cluster  int
}

type faultButton struct{ Kind, Label string }

var faultLabels = map[string]string{
	lab.SimDropAck:      "Drop the next acknowledgement",
	lab.SimCutConn:      "Cut the connection",
	lab.SimKillBroker:   "Kill the broker",
	lab.SimKillConsumer: "Kill the consumer mid-batch",
	lab.SimKillLeader:   "Kill the leader",
	lab.SimKillTwo:      "Kill two nodes",
}

func (s *Simulator) show(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	d := pageData{Settings: s.last, Off: s.off, Records: lab.SimRecords, Cluster: s.cluster}
	s.mu.Unlock()
	for _, k := range lab.SimFaultsFor(s.cluster) {
		d.Faults = append(d.Faults, faultButton{k, faultLabels[k]})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.page.ExecuteTemplate(w, "simulator.html", d); err != nil {
		s.logger.Warn("simulator page", "err", err)
	}
}

// stateReply is /simulator/state: the session's state, or "idle".
type stateReply struct {
	lab.SimState
	Busy bool `json:"busy"`
}

func (s *Simulator) state(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	ss, busy := s.session, s.busy
	settings := s.last
	s.mu.Unlock()
	rep := stateReply{SimState: lab.SimState{State: "idle", Settings: settings, Claim: settings.Claim().String()}, Busy: busy}
	if ss != nil {
		rep.SimState = ss.Snapshot()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(rep)
}

// settingsOf reads the start form; the node count is the server's.
func (s *Simulator) settingsOf(r *http.Request) (lab.SimSettings, error) {
	if err := r.ParseForm(); err != nil {
		return lab.SimSettings{}, err
	}
	on := func(name string) bool { v := r.PostForm.Get(name); return v == "on" || v == "true" || v == "1" }
	st := lab.SimSettings{Acks: r.PostForm.Get("acks"), Retries: on("retries"), Idempotent: on("idempotence"),
		Transactions: on("transactions"), Commit: r.PostForm.Get("commit"), ReadCommitted: on("readCommitted"), Dedup: on("dedup"),
		Cluster: s.cluster}
	var err error
	if st.MaxInFlight, err = strconv.Atoi(r.PostForm.Get("maxInFlight")); err != nil {
		return st, fmt.Errorf("max.in.flight.requests.per.connection %q is not a number", r.PostForm.Get("maxInFlight"))
	}
	if st.Seed, err = strconv.ParseInt(r.PostForm.Get("seed"), 10, 64); err != nil {
		return st, fmt.Errorf("seed %q is not a number", r.PostForm.Get("seed"))
	}
	return st, st.Validate()
}

func (s *Simulator) start(w http.ResponseWriter, r *http.Request) {
	if s.off != "" {
		s.reply(w, r, http.StatusServiceUnavailable, s.off)
		return
	}
	st, err := s.settingsOf(r)
	if err != nil {
		s.reply(w, r, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	// A session stopping takes a moment to end its processes: wait.
	for deadline := time.Now().Add(30 * time.Second); s.busy && time.Now().Before(deadline); {
		s.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		s.mu.Lock()
	}
	if s.busy {
		s.mu.Unlock()
		s.reply(w, r, http.StatusConflict, "a session is starting or stopping; wait for it")
		return
	}
	old := s.session
	s.session, s.busy, s.last = nil, true, st
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	// A cluster takes longer to start: three nodes, a metadata quorum,
	// a topic whose replicas must all be in sync.
	within := 30 * time.Second
	if st.Cluster > 0 {
		within = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), within)
	defer cancel()
	ss, err := lab.StartSession(ctx, s.exe, st)
	s.mu.Lock()
	s.session, s.busy = ss, false
	s.mu.Unlock()
	if err != nil {
		s.reply(w, r, http.StatusInternalServerError, "start: "+err.Error())
		return
	}
	s.reply(w, r, http.StatusOK, "")
}

func (s *Simulator) fault(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ss := s.session
	s.mu.Unlock()
	if ss == nil {
		s.reply(w, r, http.StatusConflict, "no session: start one first")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := ss.Inject(ctx, r.PathValue("kind")); err != nil {
		s.reply(w, r, http.StatusConflict, err.Error())
		return
	}
	s.reply(w, r, http.StatusOK, "")
}

// stop stops the session in the background: the consumer reads to the
// end of the log first, which takes a few seconds; the page follows it.
func (s *Simulator) stop(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ss := s.session
	if ss == nil || s.busy {
		s.mu.Unlock()
		s.reply(w, r, http.StatusConflict, "no running session to stop")
		return
	}
	s.busy = true
	s.mu.Unlock()
	go func() {
		ss.Stop(context.Background())
		s.mu.Lock()
		s.busy = false
		s.mu.Unlock()
	}()
	s.reply(w, r, http.StatusAccepted, "")
}

// reply answers the script with JSON, a plain form with a redirect back
// to the page (or the error as text).
func (s *Simulator) reply(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if r.Header.Get("Accept") == "application/json" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	if msg != "" {
		http.Error(w, msg, code)
		return
	}
	http.Redirect(w, r, "/simulator", http.StatusSeeOther)
}
