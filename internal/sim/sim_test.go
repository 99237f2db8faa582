package sim

import (
	"flag"
	"strings"
	"testing"
)

var (
	seeds = flag.Int("seeds", 300, "how many seeds TestSimPartition runs")
	first = flag.Uint64("seed", 1, "the first seed TestSimPartition runs")
	steps = flag.Int("steps", 150, "actions per seed")
)

// The partition keeps its invariants under every schedule, crash and
// recovery the seeds draw (see the package comment). A failure names its
// seed; `go test ./internal/sim -run Sim -seed N -seeds 1` replays it.
func TestSimPartition(t *testing.T) { runSeeds(t, run) }

// A leader and a follower keep the replication invariants (see the
// package comment) under every schedule the seeds draw, with the
// follower's fetches, divergence and truncation among the actions. It
// runs a third of the seeds: `-seeds` scales both.
func TestSimReplication(t *testing.T) {
	n := max(*seeds/3, 1)
	runSeedsN(t, runReplicated, n, true)
}

// runSeeds runs the flags' seeds through run, shrinking a failure.
func runSeeds(t *testing.T, run func([]action) ([]string, error)) {
	runSeedsN(t, run, *seeds, false)
}

// runSeedsN runs n seeds from the first through run.
func runSeedsN(t *testing.T, run func([]action) ([]string, error), n int, replicated bool) {
	for seed := *first; seed < *first+uint64(n); seed++ {
		actions := generate(seed, *steps, replicated)
		if _, err := run(actions); err != nil {
			small := shrink(actions, run)
			trace, serr := run(small)
			t.Fatalf("seed %d: %v\n\nshrunk to %d actions, failing with: %v\n  %s", seed, err, len(small), serr, strings.Join(trace, "\n  "))
		}
	}
}

// shrink removes actions while the run still fails: a shorter trace of
// the same failure class.
func shrink(actions []action, run func([]action) ([]string, error)) []action {
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(actions); i++ {
			candidate := append(append([]action(nil), actions[:i]...), actions[i+1:]...)
			if _, err := run(candidate); err != nil {
				actions, changed = candidate, true
				i--
			}
		}
	}
	return actions
}
