package explain

import (
	"fmt"
	"maps"
	"slices"
)

// LayerResult is what one layer does to records.
type LayerResult struct {
	Layer     Layer
	Guarantee Guarantee
	// Rules are the failures this layer is exposed to.
	Rules []*Rule
}

// Change is one setting to change, and the failure it removes.
type Change struct {
	Setting
	Because *Rule
}

// Explanation is what a configuration guarantees and why.
type Explanation struct {
	Config    *Resolved
	Guarantee Guarantee
	Layers    []LayerResult
	// Weakest are the layers that decide the guarantee: of those that lose
	// or duplicate records end to end, the ones with the weakest guarantee
	// of their own.
	Weakest []Layer
	// Failures are the rules that break a stronger guarantee end to end.
	// Absorbed are rules that apply to a layer but whose harm a later
	// layer undoes (producer duplicates skipped by a dedup store).
	Failures, Absorbed []*Rule
	// Target is the next guarantee and Changes the settings that reach
	// it; HasTarget is false at exactly-once.
	Target    Guarantee
	HasTarget bool
	Changes   []Change
	// Input is the configuration given; Improved is it with Changes.
	Input, Improved Input
}

// evaluation is one pass of the rules over a configuration.
type evaluation struct {
	layers    []LayerResult
	lose, dup bool
	failures  []*Rule
	absorbed  []*Rule
}

func evaluate(c *Config) evaluation {
	var ev evaluation
	for _, l := range Layers {
		lr := LayerResult{Layer: l}
		var lose, dup bool
		for i := range Rules {
			r := &Rules[i]
			if r.Layer != l || !r.Applies(c) {
				continue
			}
			lr.Rules = append(lr.Rules, r)
			if r.Harm == Loss {
				lose = true
			} else {
				dup = true
			}
			// A dedup store keyed by event id skips a record stored twice
			// as it skips one delivered twice (pkg/dedup).
			if r.Harm == Duplicates && r.Layer == Producer && c.Dedup {
				ev.absorbed = append(ev.absorbed, r)
				continue
			}
			ev.failures = append(ev.failures, r)
			ev.lose = ev.lose || r.Harm == Loss
			ev.dup = ev.dup || r.Harm == Duplicates
		}
		lr.Guarantee = guaranteeOf(lose, dup)
		ev.layers = append(ev.layers, lr)
	}
	return ev
}

// meets reports whether an evaluation reaches target.
func (ev evaluation) meets(target Guarantee) bool {
	switch target {
	case ExactlyOnce:
		return !ev.lose && !ev.dup
	case AtLeastOnce:
		return !ev.lose
	case AtMostOnce:
		return !ev.dup
	}
	return true
}

// relevant reports whether a rule's harm stands between a configuration
// and target.
func relevant(r *Rule, target Guarantee) bool {
	switch target {
	case AtLeastOnce:
		return r.Harm == Loss
	case AtMostOnce:
		return r.Harm == Duplicates
	}
	return true
}

// Explain classifies in and finds the changes that reach the next
// guarantee. The error is Resolve's.
func Explain(in Input) (*Explanation, error) {
	res, err := Resolve(in)
	if err != nil {
		return nil, err
	}
	ev := evaluate(&res.Config)
	ex := &Explanation{
		Config: res, Guarantee: guaranteeOf(ev.lose, ev.dup), Layers: ev.layers,
		Failures: ev.failures, Absorbed: ev.absorbed, Input: in, Improved: in,
	}
	ex.Weakest = weakest(ev)
	ex.Target, ex.HasTarget = ex.Guarantee.next()
	if !ex.HasTarget {
		return ex, nil
	}
	// Apply the fixes of the failures in the way, then look again: a fix
	// can uncover a failure (process-then-commit duplicates once
	// commit-before-processing is gone) or make another fix moot.
	cur := in
	for range 4 {
		r, err := Resolve(cur)
		if err != nil {
			return nil, fmt.Errorf("applying %v: %w", ex.Changes, err)
		}
		ev := evaluate(&r.Config)
		if ev.meets(ex.Target) {
			ex.Improved = cur
			return ex, nil
		}
		for _, rule := range ev.failures {
			if !relevant(rule, ex.Target) {
				continue
			}
			for _, s := range rule.Fix(&r.Config) {
				s = spell(in.Client, s)
				if slices.ContainsFunc(ex.Changes, func(c Change) bool { return c.Setting == s }) {
					continue
				}
				ex.Changes = append(ex.Changes, Change{Setting: s, Because: rule})
				cur = cur.with(s)
			}
		}
	}
	return nil, fmt.Errorf("no change found that reaches %s (tried %v)", ex.Target, ex.Changes)
}

// weakest names the layers that decide the guarantee.
func weakest(ev evaluation) []Layer {
	contributes := map[Layer]bool{}
	for _, r := range ev.failures {
		contributes[r.Layer] = true
	}
	low := 3
	for _, lr := range ev.layers {
		if contributes[lr.Layer] {
			low = min(low, lr.Guarantee.rank())
		}
	}
	var out []Layer
	for _, lr := range ev.layers {
		if contributes[lr.Layer] && lr.Guarantee.rank() == low {
			out = append(out, lr.Layer)
		}
	}
	return out
}

// with returns a copy of in with s set, replacing every spelling of the
// same property.
func (in Input) with(s Setting) Input {
	out := in
	out.Producer, out.Consumer, out.Topic = maps.Clone(in.Producer), maps.Clone(in.Consumer), maps.Clone(in.Topic)
	target := map[Layer]*map[string]string{Producer: &out.Producer, Topic: &out.Topic, Consumer: &out.Consumer}[s.Layer]
	if *target == nil {
		*target = map[string]string{}
	}
	key := s.Key
	if a, ok := canonical(in.Client, s.Key); ok {
		key = a.key
	}
	for k := range *target {
		if a, ok := canonical(in.Client, k); ok && a.key == key {
			delete(*target, k)
		}
	}
	(*target)[s.Key] = s.Value
	return out
}

// Labs lists the lab scenarios of the failures, without repeats.
func (ex *Explanation) Labs() []string {
	var out []string
	for _, r := range ex.Failures {
		for _, s := range r.Lab(&ex.Config.Config) {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
