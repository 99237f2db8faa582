// Package faults holds Weir's named fault points: places where a test or
// the lab can make the broker lose a response, delay it, close the
// connection or exit the process. Every point is off unless a spec turns
// it on, and a spec is only read from the explicitly unsafe
// `--unsafe-faults` flag of `weir serve` or from pkg/weir's Config, never
// from a properties file.
//
// A spec is a comma-separated list of rules, each
//
//	POINT=ACTION[@PROBABILITY][#TIMES][+SKIP]
//
// where POINT is "<api>.response" (the response to a request of that API,
// after the broker has acted on it: "produce.response", "fetch.response",
// …) or one of the internal points below, ACTION is drop (close the connection without sending the response:
// a lost acknowledgement), close (send it, then close), delay:DURATION, or
// exit (end the process at once, as a crash after the append), PROBABILITY
// is the chance a request fires the rule (default 1), TIMES caps how often
// it fires, and SKIP lets that many matching requests pass first. The
// random draws come from a seeded source, so a seed reproduces a schedule.
//
// The spec "none" turns injection on with no rule yet: rules are then
// added while the broker runs (Add, through the admin listener's
// /unsafe/faults), which is how the delivery simulator drops the next
// acknowledgement when a person clicks.
//
// The point producer.dedup takes one action, skip: a retried idempotent
// batch is then appended again instead of being recognised as a duplicate.
// It makes a deliberately broken broker, to test that the lab's checker
// catches the duplicates.
package faults

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is what a fired rule does.
type Kind int

// Internal points, inside the broker rather than at a response. Only exit
// and delay act there.
const (
	// TxnBeforeMarkers is passed when a transaction's PrepareCommit or
	// PrepareAbort is durable and its markers are not yet written.
	TxnBeforeMarkers = "txn.before-markers"
	// TxnBeforeComplete is passed when the markers are durable and the
	// CompleteCommit or CompleteAbort record is not yet written.
	TxnBeforeComplete = "txn.before-complete"
	// ProducerDedup is passed when a partition recognises a retried
	// idempotent batch; skip makes it append the batch again.
	ProducerDedup = "producer.dedup"
)

var internalPoints = map[string]bool{TxnBeforeMarkers: true, TxnBeforeComplete: true, ProducerDedup: true}

// Actions.
const (
	None Kind = iota
	Drop
	Close
	Delay
	Exit
	Skip
)

func (k Kind) String() string {
	return [...]string{"none", "drop", "close", "delay", "exit", "skip"}[k]
}

// Action is the outcome of Fire.
type Action struct {
	Kind  Kind
	Delay time.Duration
}

type rule struct {
	point   string
	action  Action
	prob    float64
	times   int // 0 = unlimited
	skip    int
	matched int
	fired   int
}

// Injector decides, for each pass through a fault point, what happens.
// A nil *Injector never fires.
type Injector struct {
	mu    sync.Mutex
	rng   *rand.Rand
	rules []*rule
}

// Parse reads a spec; seed seeds the probability draws.
func Parse(spec string, seed int64) (*Injector, error) {
	in := &Injector{rng: rand.New(rand.NewSource(seed))}
	if strings.TrimSpace(spec) == "none" {
		return in, nil
	}
	if err := in.parseInto(spec); err != nil {
		return nil, err
	}
	if len(in.rules) == 0 {
		return nil, fmt.Errorf("fault spec %q has no rules", spec)
	}
	return in, nil
}

// Add appends the rules of spec to a running injector: they fire after
// the rules already there have had their turn, as if they had been in the
// spec from the start.
func (in *Injector) Add(spec string) error {
	if in == nil {
		return fmt.Errorf("fault injection is off")
	}
	add := &Injector{}
	if err := add.parseInto(spec); err != nil {
		return err
	}
	if len(add.rules) == 0 {
		return fmt.Errorf("fault spec %q has no rules", spec)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = append(in.rules, add.rules...)
	return nil
}

// parseInto appends spec's rules to in.
func (in *Injector) parseInto(spec string) error {
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		r, err := parseRule(part)
		if err != nil {
			return fmt.Errorf("fault %q: %w", part, err)
		}
		in.rules = append(in.rules, r)
	}
	return nil
}

func parseRule(s string) (*rule, error) {
	point, rest, ok := strings.Cut(s, "=")
	if !ok || !(internalPoints[point] || strings.HasSuffix(point, ".response") && len(point) > len(".response")) {
		return nil, fmt.Errorf("expected <api>.response=ACTION, %s=ACTION, %s=ACTION or %s=skip", TxnBeforeMarkers, TxnBeforeComplete, ProducerDedup)
	}
	r := &rule{point: point, prob: 1}
	// Split off the modifiers, which start at the first of @ # +.
	actionText := rest
	if i := strings.IndexAny(rest, "@#+"); i >= 0 {
		actionText, rest = rest[:i], rest[i:]
	} else {
		rest = ""
	}
	switch {
	case actionText == "drop":
		r.action.Kind = Drop
	case actionText == "close":
		r.action.Kind = Close
	case actionText == "exit":
		r.action.Kind = Exit
	case actionText == "skip" && point == ProducerDedup:
		r.action.Kind = Skip
	case strings.HasPrefix(actionText, "delay:"):
		d, err := time.ParseDuration(strings.TrimPrefix(actionText, "delay:"))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("bad delay %q", actionText)
		}
		r.action = Action{Kind: Delay, Delay: d}
	default:
		return nil, fmt.Errorf("unknown action %q (drop, close, exit, delay:DURATION; skip at producer.dedup)", actionText)
	}
	for rest != "" {
		mod := rest[0]
		rest = rest[1:]
		end := strings.IndexAny(rest, "@#+")
		if end < 0 {
			end = len(rest)
		}
		val := rest[:end]
		rest = rest[end:]
		switch mod {
		case '@':
			p, err := strconv.ParseFloat(val, 64)
			if err != nil || p <= 0 || p > 1 {
				return nil, fmt.Errorf("probability %q is not in (0, 1]", val)
			}
			r.prob = p
		case '#', '+':
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("count %q is not a non-negative integer", val)
			}
			if mod == '#' {
				r.times = n
			} else {
				r.skip = n
			}
		}
	}
	return r, nil
}

// Fire is called as a request passes point; it returns what to do.
func (in *Injector) Fire(point string) Action {
	if in == nil {
		return Action{}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range in.rules {
		if r.point != point {
			continue
		}
		r.matched++
		if r.matched <= r.skip || (r.times > 0 && r.fired >= r.times) {
			continue
		}
		if r.prob < 1 && in.rng.Float64() >= r.prob {
			continue
		}
		r.fired++
		return r.action
	}
	return Action{}
}

// Pass is Fire for an internal point: an exit ends the process at once
// (as a crash at that point would), a delay sleeps; other actions do
// nothing there.
func (in *Injector) Pass(point string) {
	switch a := in.Fire(point); a.Kind {
	case Exit:
		fmt.Fprintf(os.Stderr, "weir: fault: exiting at %s\n", point)
		os.Exit(3)
	case Delay:
		time.Sleep(a.Delay)
	}
}

// PassUntil is Pass with a delay that ends early when stop is closed; it
// reports whether stop was closed (the caller gives up what it was doing).
func (in *Injector) PassUntil(point string, stop <-chan struct{}) (stopped bool) {
	switch a := in.Fire(point); a.Kind {
	case Exit:
		fmt.Fprintf(os.Stderr, "weir: fault: exiting at %s\n", point)
		os.Exit(3)
	case Delay:
		t := time.NewTimer(a.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-stop:
			return true
		}
	}
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// Fired is how many times rules at point have fired.
func (in *Injector) Fired(point string) int {
	if in == nil {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, r := range in.rules {
		if r.point == point {
			n += r.fired
		}
	}
	return n
}
