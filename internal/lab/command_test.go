package lab

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/pkg/weir"
)

// runLab runs `weir lab` with args and returns its output and exit code.
func runLab(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runLabWithin(t, 80*time.Second, args...)
}

// runLabWithin is runLab with a longer or shorter bound on the run.
func runLabWithin(t *testing.T, within time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, weirBin, append([]string{"lab"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("weir lab %v: %v\n%s", args, err, out.String())
	return "", -1
}

// tableRow finds the table row of a scenario in the output.
func tableRow(t *testing.T, out, config, fault string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " "+config+" ") && strings.Contains(line, fault) && !strings.HasPrefix(line, "[") {
			return strings.Fields(line)
		}
	}
	t.Fatalf("no table row for %s / %s in:\n%s", config, fault, out)
	return nil
}

// smallRun keeps the command tests quick.
var smallRun = []string{"--records", "300", "--consumer-records", "300", "--seed", "7"}

// TestLabGuaranteesHoldAgainstWeir runs one scenario of each kind
// against Weir children and checks that every claimed guarantee holds,
// the command exits zero, and the report renders in a real browser.
func TestLabGuaranteesHoldAgainstWeir(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.html")
	out, code := runLab(t, append(smallRun, "--report", report, "--only",
		"acks=all idempotent / lost acks,acks=all / broker killed,transactional / connection drops,"+
			"commit before processing,process then commit,dedup store,worker killed mid-transaction")...)
	if code != 0 {
		t.Fatalf("weir lab exited %d:\n%s", code, out)
	}
	for _, want := range []string{`seed 7`, `\[ 1/7\] producer`, `\[ 7/7\] end to end`, `report written to`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The columns of a row: ... guarantee sent acked delivered lost dup ...
	counts := func(config, fault string) (lost, dup string) {
		f := tableRow(t, out, config, fault)
		for i, v := range f {
			if v == "exactly-once" || v == "at-least-once" || v == "at-most-once" || v == "none" {
				return f[i+4], f[i+5]
			}
		}
		t.Fatalf("row %v has no guarantee column", f)
		return
	}
	if lost, dup := counts("idempotent", "lost acks"); lost != "0" || dup != "0" {
		t.Errorf("idempotent producer under lost acks: lost %s dup %s, want 0 0", lost, dup)
	}
	if lost, _ := counts("commit before processing", "killed"); lost == "0" {
		t.Errorf("commit before processing lost nothing when killed mid-batch:\n%s", out)
	}
	if _, dup := counts("process then commit", "killed"); dup == "0" {
		t.Errorf("process then commit redelivered nothing when killed mid-batch:\n%s", out)
	}
	assertReportRenders(t, report)
}

// TestLabStatefulRowHoldsAcrossWorkerAndBrokerKills runs the stateful
// processor's row: its workers SIGKILL themselves mid-transaction, the
// broker is SIGKILLed under the next one, and the counts read back from
// the changelog equal the input's (the row fails otherwise: see
// TestCheckerCountsWrongAggregates).
func TestLabStatefulRowHoldsAcrossWorkerAndBrokerKills(t *testing.T) {
	out, code := runLab(t, append(smallRun, "--report", filepath.Join(t.TempDir(), "report.html"), "--only", "stateful processor")...)
	if code != 0 {
		t.Fatalf("weir lab exited %d:\n%s", code, out)
	}
	for _, want := range []string{`worker SIGKILLed 2×`, `broker SIGKILLed after the worker's commit \d`, `\d+ keys counted`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestLabSagaRowHoldsAcrossWorkerAndBrokerKills runs the order saga's
// row: each service's worker is SIGKILLed mid-transaction and restarted
// (the payment service's first past the order timeout, so late charges
// are refunded), the broker is SIGKILLed and restarted, and every order
// ends in exactly one terminal state with its compensations applied
// exactly when due and the stocks and balances matching the completed
// orders (the row fails otherwise: see TestSagaCheckerCountsBrokenSagas).
func TestLabSagaRowHoldsAcrossWorkerAndBrokerKills(t *testing.T) {
	out, code := runLab(t, append(smallRun, "--report", filepath.Join(t.TempDir(), "report.html"), "--only", "order saga")...)
	if code != 0 {
		t.Fatalf("weir lab exited %d:\n%s", code, out)
	}
	for _, want := range []string{
		`order [1-9]\d*× \(\d+ by itself mid-transaction\), inventory [1-9]\d*× \(\d+ by itself mid-transaction\), payment [1-9]\d*×`,
		`broker SIGKILLed \d+ ms after the first order and restarted`,
		`orders: \d+ placed, [1-9]\d* completed, cancelled [^;]*\d+ timeout`,
		`order saga .* holds`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestLabCatchesBrokerThatAppendsDuplicates breaks the broker's
// idempotence check on purpose: the lab must report the duplicates as a
// broken exactly-once guarantee and exit non-zero.
func TestLabCatchesBrokerThatAppendsDuplicates(t *testing.T) {
	out, code := runLab(t, append(smallRun, "--report", "", "--unsafe-broker-faults", "producer.dedup=skip",
		"--only", "acks=all idempotent / lost acks")...)
	if code == 0 {
		t.Fatalf("weir lab exited 0 against a broker that appends retried batches again:\n%s", out)
	}
	if !regexp.MustCompile(`BROKEN producer / acks=all idempotent / lost acks: claims exactly-once, measured \d+ duplicates`).MatchString(out) {
		t.Fatalf("output does not name the broken guarantee:\n%s", out)
	}
}

// TestLabAgainstExternalBrokersInjectsFaultsOnTheClient runs against a
// cluster the lab does not control: broker kills are not run, lost acks
// and connection drops are injected in the producer's connections, and
// the guarantees still hold.
func TestLabAgainstExternalBrokersInjectsFaultsOnTheClient(t *testing.T) {
	b, err := weir.Start(context.Background(), weir.Config{DataDir: t.TempDir(), Settings: map[string]string{
		"group.initial.rebalance.delay.ms": "0",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out, code := runLab(t, append(smallRun, "--report", "", "--brokers", b.Addr(), "--only", "producer / acks=all")...)
	if code != 0 {
		t.Fatalf("weir lab exited %d:\n%s", code, out)
	}
	for _, config := range []string{"acks=all", "idempotent"} {
		if row := strings.Join(tableRow(t, out, config, "broker killed"), " "); !strings.Contains(row, "not run") {
			t.Errorf("%s / broker killed against external brokers: %q, want not run", config, row)
		}
		for _, fault := range []string{"no fault", "lost acks", "connection drops"} {
			if row := strings.Join(tableRow(t, out, config, fault), " "); !strings.Contains(row, "holds") {
				t.Errorf("%s / %s against external brokers: %q, want holds", config, fault, row)
			}
		}
	}
	// The retries after lost responses show as duplicates without
	// idempotence, proof that the client-side faults fired.
	if !regexp.MustCompile(`produce requests hit on the client side`).MatchString(out) {
		t.Errorf("no client-side fault reported:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^\s*producer\s+acks=all\s+lost acks\s+at-least-once\s+300\s+300\s+300\s+0\s+[1-9]`).MatchString(out) {
		t.Errorf("acks=all without idempotence under client-side lost acks shows no duplicates:\n%s", out)
	}
}

func TestLabRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--records", "-1"}, "must not be negative"},
		{[]string{"--records", "10"}, "at least 100"},
		{[]string{"--only", "no such scenario", "--report", ""}, "no scenario matches"},
		{[]string{"--unsafe-broker-faults", "producer.dedup=explode", "--only", "acks=0 / no fault", "--report", ""}, "unknown action"},
		{[]string{"--cluster", "2", "--report", ""}, "need three nodes"},
		{[]string{"--cluster", "3", "--brokers", "127.0.0.1:1", "--report", ""}, "does not combine with --brokers"},
	} {
		out, code := runLab(t, tc.args...)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("weir lab %v: exit %d, output %q; want an error with %q", tc.args, code, out, tc.want)
		}
		if strings.Contains(out, "panic") {
			t.Errorf("weir lab %v panicked:\n%s", tc.args, out)
		}
	}
}

func TestPlanIsReproducibleFromTheSeed(t *testing.T) {
	a, b := Plan(Config{Seed: 11}), Plan(Config{Seed: 11})
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("same seed, different plans:\n%v\n%v", a, b)
	}
	if c := Plan(Config{Seed: 12}); strings.Join(a, "\n") == strings.Join(c, "\n") {
		t.Fatalf("seeds 11 and 12 give the same plan:\n%v", a)
	}
	// A scenario keeps its schedule when run alone.
	alone := Plan(Config{Seed: 11, Only: []string{"acks=1 / broker killed"}})
	if len(alone) != 1 || !slicesContain(a, alone[0]) {
		t.Fatalf("scenario run alone got %v, not its schedule in the full plan", alone)
	}
	// The command prints the same plan.
	out, code := runLab(t, "--plan", "--seed", "11")
	if code != 0 || !strings.Contains(out, strings.Join(a, "\n")) {
		t.Fatalf("weir lab --plan --seed 11 (exit %d) does not print the plan:\n%s", code, out)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
