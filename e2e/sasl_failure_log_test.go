package e2e

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// A failed authentication is logged (issue 16: "logged without the
// secret"): the broker's log names the source, the listener and the
// mechanism, and never the password the client sent. PLAIN carries the
// password itself, so a wrong PLAIN password is the case where a careless
// log line would write a secret down (often a real password, one
// character off).
func TestFailedAuthenticationIsLoggedWithoutThePassword(t *testing.T) {
	dir := t.TempDir()
	if out, err := runWeir(t, "right-password\n", "user", "add", "alice", "--mechanism", "SCRAM-SHA-256", "--password-stdin", "--data", dir); err != nil {
		t.Fatalf("weir user add --data: %v\n%s", err, out)
	}
	p := startProc(t, "SASL_PLAINTEXT://127.0.0.1:0", dir, "--log-level", "info",
		"--set", "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256", "--set", "sasl.plain.allow.plaintext=true")
	const guess = "right-passwordX7q"
	err := metadataErr(t, p.addr, kgo.SASL(plain.Auth{User: "alice", Pass: guess}.AsMechanism()))
	if err == nil || !strings.Contains(err.Error(), kerr.SaslAuthenticationFailed.Message) {
		t.Fatalf("a wrong PLAIN password: %v, want %s", err, kerr.SaslAuthenticationFailed.Message)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	logs := p.logs.String()
	if n := countLines(logs, "SASL authentication failed", "remote=127.0.0.1:", "listener=SASL_PLAINTEXT", "mechanism=PLAIN"); n != 1 {
		t.Fatalf("%d log lines of the failed authentication, want 1; the broker's log:\n%s", n, logs)
	}
	for _, secret := range []string{guess, "X7q", "right-password"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the broker's log holds %q of the password:\n%s", secret, logs)
		}
	}
}
