package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// runWeir runs the weir binary with args and stdin, and returns its
// standard output. A failed command returns a *cliError; whatever the test
// expects of it, its error must read as one line that says nothing twice.
func runWeir(t testing.TB, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(weirBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		checkCLIError(t, args, string(ee.Stderr))
		return string(out), &cliError{err: ee, stderr: string(ee.Stderr)}
	}
	return string(out), err
}

// checkCLIError fails t unless stderr, what a failed weir command printed,
// is a single line without repeated text.
func checkCLIError(t testing.TB, args []string, stderr string) {
	t.Helper()
	line := strings.TrimSuffix(stderr, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Errorf("weir %s: error is not one line: %q", strings.Join(args, " "), stderr)
		return
	}
	if rep := repeatedText(line); rep != "" {
		t.Errorf("weir %s: error says %q twice: %q", strings.Join(args, " "), rep, line)
	}
}

// repeatedText returns text that line says twice, or "": a Kafka error
// code's name (TOPIC_ALREADY_EXISTS), or a run of four words.
func repeatedText(line string) string {
	words := strings.Fields(line)
	seen := map[string]bool{}
	for _, w := range words {
		if code := strings.Trim(w, ".,:;()\"'"); isErrorCodeName(code) {
			if seen[code] {
				return code
			}
			seen[code] = true
		}
	}
	const run = 4
	runs := map[string]bool{}
	for i := 0; i+run <= len(words); i++ {
		r := strings.Join(words[i:i+run], " ")
		if runs[r] {
			return r
		}
		runs[r] = true
	}
	return ""
}

// isErrorCodeName reports whether w looks like a Kafka error code's name:
// upper-case words joined by underscores.
func isErrorCodeName(w string) bool {
	if !strings.Contains(w, "_") {
		return false
	}
	for _, r := range w {
		if (r < 'A' || r > 'Z') && r != '_' {
			return false
		}
	}
	return true
}

type cliError struct {
	err    *exec.ExitError
	stderr string
}

func (e *cliError) Error() string { return e.err.Error() + ": " + e.stderr }

// weir topic create, weir produce and weir consume round-trip records
// against `weir serve`, as the README shows.
func TestCLIRoundTripAgainstWeirServe(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	brokers := "--brokers=" + p.addr
	if _, err := runWeir(t, "", "topic", "create", "orders", "--partitions", "3", brokers); err != nil {
		t.Fatal(err)
	}
	out, err := runWeir(t, "", "topic", "list", brokers)
	if err != nil || !strings.Contains(out, "orders") {
		t.Fatalf("topic list: %q %v", out, err)
	}
	if _, err := runWeir(t, "a:1\nb:2\nc:3\n", "produce", "orders", "--key-separator", ":", brokers); err != nil {
		t.Fatal(err)
	}
	out, err = runWeir(t, "", "consume", "orders", "--from", "start", "--format", "kv", "-n", "3", brokers)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(out), "\n")
	want := map[string]bool{"a\t1": true, "b\t2": true, "c\t3": true}
	if len(got) != 3 {
		t.Fatalf("consumed %q", out)
	}
	for _, l := range got {
		if !want[l] {
			t.Fatalf("unexpected record %q in %q", l, out)
		}
	}
	// Errors are one line and a non-zero exit.
	_, err = runWeir(t, "", "topic", "create", "orders", brokers)
	ce, ok := err.(*cliError)
	if !ok || !strings.Contains(ce.stderr, "TOPIC_ALREADY_EXISTS") || strings.Count(strings.TrimSpace(ce.stderr), "\n") != 0 {
		t.Fatalf("creating an existing topic: %v", err)
	}
	if _, err := runWeir(t, "", "produce", "orders", "--acks", "2", brokers); err == nil {
		t.Fatal("--acks 2 accepted")
	}
	// SIGTERM shuts the broker down cleanly.
	if err := p.stop(); err != nil {
		t.Fatalf("clean shutdown: %v", err)
	}
}
