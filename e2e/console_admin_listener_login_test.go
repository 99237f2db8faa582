package e2e

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// With a SASL listener security is on, and the admin listener serves no
// page without a SCRAM login: the console asks for one, and so must the
// profiling pages under /debug/pprof/, which describe the broker's
// internals and, at /debug/pprof/cmdline, print its command line — where
// `--set sasl.jaas.config=…` puts the node's own SASL password. The
// correct outcome is 401 for every /debug/pprof/ page requested without
// a login, and the node's password on no page at all.
func TestAdminListenerWithSASLShowsNoProfilingPageOrSecretWithoutALogin(t *testing.T) {
	const secret = "broker-jaas-secret-4711"
	base := freePortRange(t, 1)
	admin := "127.0.0.1:" + strconv.Itoa(base+100)
	jaas := `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="` + secret + `";`
	startProc(t, "SASL_PLAINTEXT://127.0.0.1:"+strconv.Itoa(base), filepath.Join(t.TempDir(), "data"),
		"--admin-listen", admin, "--set", jaas)

	if code, _ := consoleGet(t, admin, "/topics"); code != http.StatusUnauthorized {
		t.Fatalf("the console without a login answered %d, want 401 (security is on)", code)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=2"} {
		code, body := consoleGet(t, admin, path)
		if code != http.StatusUnauthorized {
			t.Errorf("GET %s without a login answered %d, want 401", path, code)
		}
		if strings.Contains(body, secret) {
			t.Errorf("GET %s without a login shows the node's SASL password %q", path, secret)
		}
	}
}
