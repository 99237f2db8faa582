package lab

import (
	"context"
	"errors"
	"fmt"
	"github.com/twmb/franz-go/pkg/kgo"
	"io"
	"math/rand"
	"os"
	"strings"
	"time"
)

// Config configures a lab run.
type Config struct {
	// Brokers, when set, is an external Kafka-compatible cluster; faults
	// that need the broker's cooperation are then not run. Empty: each
	// scenario gets its own `weir serve` child of Exe.
	Brokers []string
	// Exe is the weir binary run as broker and as consumer workers.
	Exe string
	// Seed fixes the fault schedule.
	Seed int64
	// Records is how many records each producer scenario sends.
	Records int
	// ConsumerRecords is how many records consumer and end-to-end
	// scenarios read.
	ConsumerRecords int
	// Partitions per topic.
	Partitions int32
	// Only, when non-empty, keeps the scenarios whose name contains one of
	// these strings.
	Only []string
	// ExtraFaults is appended to every embedded broker's fault spec: a
	// deliberately broken broker, to check that the checker notices.
	ExtraFaults string
	// Progress receives a line per scenario as it runs; nil: none.
	Progress io.Writer
	// ScenarioTimeout bounds one scenario.
	ScenarioTimeout time.Duration
	// Cluster, when positive, runs the broker layer's rows instead: each
	// on a fresh cluster of this many `weir serve` nodes (3, for a
	// replication factor of 3).
	Cluster int
	// ClientOpts are the security options (TLS, SASL) of the external
	// cluster's clients; CommandConfig and CommandProperties are the
	// --command-config file and the --command-property flags they came
	// from, handed to the worker processes.
	ClientOpts        []kgo.Opt
	CommandConfig     string
	CommandProperties []string
}

func (c *Config) setDefaults() {
	if c.Records <= 0 {
		c.Records = 2000
	}
	if c.ConsumerRecords <= 0 {
		c.ConsumerRecords = 1500
	}
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if c.ScenarioTimeout <= 0 {
		c.ScenarioTimeout = 60 * time.Second
	}
	if c.Cluster > 0 && c.ScenarioTimeout < 2*time.Minute {
		// A row starts its own cluster and waits out elections.
		c.ScenarioTimeout = 2 * time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Outcome is one scenario's measurement and verdict.
type Outcome struct {
	Side      string    `json:"side"`
	Config    string    `json:"config"`
	Fault     string    `json:"fault"`
	Guarantee Guarantee `json:"-"`
	Claim     string    `json:"guarantee"`
	Result
	// NotRun says why the scenario was skipped; Err why it failed to run.
	NotRun     string        `json:"notRun,omitempty"`
	Err        string        `json:"error,omitempty"`
	Violations []string      `json:"violations,omitempty"`
	Throughput float64       `json:"recordsPerSec"`
	P50, P99   time.Duration `json:"-"`
	Elapsed    time.Duration `json:"-"`
	Notes      string        `json:"notes,omitempty"`
	// Schedule is the fault schedule drawn from the seed.
	Schedule string `json:"schedule"`
	// Refused counts the error codes the brokers answered produce
	// requests with, by name (broker-layer rows, seen by the lab's proxy).
	Refused map[string]int `json:"refusedByBroker,omitempty"`
	// Failed counts the records the producer gave up on, by final error.
	Failed map[string]int `json:"failedRecords,omitempty"`
	// Stall is the longest time without an acknowledgement while the
	// producer wrote (broker-layer rows).
	Stall time.Duration `json:"-"`
}

// Name is "side / config / fault".
func (o *Outcome) Name() string { return o.Side + " / " + o.Config + " / " + o.Fault }

// Broken reports whether the scenario broke its guarantee or could not
// be run to the end.
func (o *Outcome) Broken() bool { return len(o.Violations) > 0 || o.Err != "" }

// Report is a whole lab run.
type Report struct {
	Seed     int64
	Target   string
	Started  time.Time
	Elapsed  time.Duration
	Outcomes []*Outcome
	// Pruned lists the broker-layer combinations not run, and why.
	Pruned []Pruned
}

// Failed reports whether any scenario broke its guarantee or errored.
func (r *Report) Failed() bool {
	for _, o := range r.Outcomes {
		if o.Broken() {
			return true
		}
	}
	return false
}

// measure is what a scenario's run function returns.
type measure struct {
	history    History
	throughput float64
	p50, p99   time.Duration
	notes      []string
	// Broker-layer rows: produce errors answered, records given up on,
	// the longest time without an acknowledgement.
	refused, failed map[string]int
	stall           time.Duration
}

// env is what a running scenario works with.
type env struct {
	cfg       *Config
	workDir   string
	topic     string
	spec      string // the broker's fault spec
	faultSeed int64  // seeds the broker's fault draws
	kills     []int  // kill points, in the scenario's unit
	// clientFault is injected in the producer's connections when the
	// brokers are not the lab's own.
	clientFault clientFault
}

// scenario is one configuration under one fault.
type scenario struct {
	side, config, fault string
	guarantee           Guarantee
	// embeddedOnly scenarios need a Weir child (kills, fault specs).
	embeddedOnly bool
	spec         string // broker fault spec
	// clientFault stands in for spec against brokers the lab does not run.
	clientFault clientFault
	// kills draws the kill points from the scenario's random source;
	// killUnit says what they count.
	kills    func(c *Config, rng *rand.Rand) []int
	killUnit string
	run      func(ctx context.Context, e *env) (*measure, error)
}

func (s *scenario) name() string { return s.side + " / " + s.config + " / " + s.fault }

// Run runs every scenario and returns the report. The error is for a lab
// that could not run at all; broken guarantees are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.setDefaults()
	if len(cfg.Brokers) == 0 && cfg.Exe == "" {
		return nil, errors.New("lab: no brokers and no weir binary to run one")
	}
	if cfg.Cluster > 0 && len(cfg.Brokers) > 0 {
		return nil, errors.New("lab: the broker layer's rows run on the lab's own cluster, not on --brokers")
	}
	if cfg.Cluster != 0 && cfg.Cluster != 3 {
		return nil, fmt.Errorf("lab: --cluster %d: the broker layer's rows need three nodes (a replication factor of 3)", cfg.Cluster)
	}
	work, err := os.MkdirTemp("", "weir-lab-")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer os.RemoveAll(work)

	all, pruned := selectScenarios(&cfg)
	// Seeds are drawn for every scenario before filtering, so a scenario
	// gets the same schedule whether it runs alone or with the rest.
	rng := rand.New(rand.NewSource(cfg.Seed))
	seeds := make([]int64, len(all))
	for i := range seeds {
		seeds[i] = rng.Int63()
	}
	var picked []int
	for i, s := range all {
		if keep(s.name(), cfg.Only) {
			picked = append(picked, i)
		}
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("lab: no scenario matches %q", strings.Join(cfg.Only, ","))
	}
	target := "weir serve (a child process per scenario)"
	switch {
	case len(cfg.Brokers) > 0:
		target = strings.Join(cfg.Brokers, ",")
	case cfg.Cluster > 0:
		target = fmt.Sprintf("a %d-node weir cluster per scenario, each node behind the lab's proxy", cfg.Cluster)
	}
	rep := &Report{Seed: cfg.Seed, Target: target, Started: time.Now()}
	for _, p := range pruned {
		if keep(p.Name, cfg.Only) {
			rep.Pruned = append(rep.Pruned, p)
		}
	}
	runID := fmt.Sprintf("%x", uint32(cfg.Seed)^uint32(time.Now().UnixNano()))
	for n, i := range picked {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		s := all[i]
		fmt.Fprintf(cfg.Progress, "[%2d/%d] %-60s ", n+1, len(picked), s.name())
		e := newEnv(&cfg, s, seeds[i], fmt.Sprintf("weir-lab-%s-%d", runID, i))
		o := runOne(ctx, s, e, work)
		rep.Outcomes = append(rep.Outcomes, o)
		fmt.Fprintln(cfg.Progress, progressLine(o))
	}
	rep.Elapsed = time.Since(rep.Started)
	return rep, nil
}

// selectScenarios is the broker layer's rows with --cluster, the
// single-broker and client rows without.
func selectScenarios(cfg *Config) ([]*scenario, []Pruned) {
	if cfg.Cluster > 0 {
		return clusterScenarios(cfg)
	}
	return scenarios(cfg), nil
}

func keep(name string, only []string) bool {
	if len(only) == 0 {
		return true
	}
	for _, o := range only {
		if o != "" && strings.Contains(name, o) {
			return true
		}
	}
	return false
}

// newEnv draws the scenario's fault schedule from its seed.
func newEnv(cfg *Config, s *scenario, seed int64, topic string) *env {
	rng := rand.New(rand.NewSource(seed))
	e := &env{cfg: cfg, topic: topic, spec: s.spec, faultSeed: rng.Int63n(1 << 31)}
	if len(cfg.Brokers) > 0 {
		e.clientFault = s.clientFault
	}
	if s.kills != nil {
		e.kills = s.kills(cfg, rng)
	}
	return e
}

// Plan describes the fault schedule of every scenario cfg selects,
// without running anything: the same seed gives the same plan.
func Plan(cfg Config) []string {
	cfg.setDefaults()
	all, pruned := selectScenarios(&cfg)
	rng := rand.New(rand.NewSource(cfg.Seed))
	var out []string
	for _, s := range all {
		seed := rng.Int63()
		if keep(s.name(), cfg.Only) {
			out = append(out, s.name()+": "+s.describe(newEnv(&cfg, s, seed, "")))
		}
	}
	for _, p := range pruned {
		if keep(p.Name, cfg.Only) {
			out = append(out, p.Name+": pruned: "+p.Why)
		}
	}
	return out
}

// runOne runs a scenario in its own directory and judges it.
func runOne(ctx context.Context, s *scenario, e *env, work string) *Outcome {
	o := &Outcome{Side: s.side, Config: s.config, Fault: s.fault, Guarantee: s.guarantee, Claim: s.guarantee.String(), Schedule: s.describe(e)}
	if s.embeddedOnly && len(e.cfg.Brokers) > 0 {
		o.NotRun = "killing a broker needs the lab's own broker, not --brokers"
		return o
	}
	dir, err := os.MkdirTemp(work, "scenario-")
	if err != nil {
		o.Err = err.Error()
		return o
	}
	defer os.RemoveAll(dir)
	e.workDir = dir
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ScenarioTimeout)
	defer cancel()
	start := time.Now()
	m, err := s.run(ctx, e)
	o.Elapsed = time.Since(start)
	if errors.Is(err, errNotRun) {
		o.NotRun = err.Error()
		return o
	}
	if err != nil {
		o.Err = err.Error()
		return o
	}
	o.Result = Check(m.history)
	o.Violations = o.Result.Violations(s.guarantee)
	o.Throughput, o.P50, o.P99 = m.throughput, m.p50, m.p99
	o.Refused, o.Failed, o.Stall = m.refused, m.failed, m.stall
	if len(m.refused) > 0 {
		m.notes = append(m.notes, "brokers refused produce requests with "+countsText(m.refused))
	}
	if len(m.failed) > 0 {
		m.notes = append(m.notes, "records given up on: "+countsText(m.failed))
	}
	if m.stall > 0 {
		m.notes = append(m.notes, fmt.Sprintf("longest time without an acknowledgement %.1fs", m.stall.Seconds()))
	}
	o.Notes = strings.Join(m.notes, "; ")
	return o
}

func progressLine(o *Outcome) string {
	switch {
	case o.NotRun != "":
		return "not run (" + o.NotRun + ")"
	case o.Err != "":
		return "ERROR: " + o.Err
	}
	verdict := "ok"
	if len(o.Violations) > 0 {
		verdict = "BROKEN: " + strings.Join(o.Violations, ", ")
	}
	line := fmt.Sprintf("lost %d dup %d  %s  (%.1fs)", o.Lost, o.Duplicated, verdict, o.Elapsed.Seconds())
	if o.Notes != "" {
		line += "  " + o.Notes
	}
	return line
}
