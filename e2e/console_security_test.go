package e2e

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// With SASL listeners the console asks for a SCRAM user's login, logs in
// to the broker as that user, and so shows and does only what the user's
// ACLs allow: a wrong password or no login gets 401, a topic the user may
// not describe is not listed, and aborting a transaction needs Write on
// its TransactionalId. A form posted from another origin is refused, so a
// page elsewhere cannot use a logged-in browser to abort.
func TestConsoleLogsInAsAScramUserAndHonoursItsACLs(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{"admin", "viewer"} {
		if out, err := runWeir(t, u+"-pw\n", "user", "add", u, "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", dir); err != nil {
			t.Fatalf("weir user add %s: %v\n%s", u, err, out)
		}
	}
	admin := "127.0.0.1:" + strconv.Itoa(freePortRange(t, 1))
	b := startBrokerIn(t, dir, map[string]string{
		"listeners":                      "SASL_PLAINTEXT://127.0.0.1:0",
		"authorizer.class.name":          "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":                    "User:admin",
		"allow.everyone.if.no.acl.found": "false",
		"admin.listeners":                admin,
	})
	addr := b.Addr()
	props := writeFile(t, filepath.Join(t.TempDir(), "admin.properties"), "security.protocol=SASL_PLAINTEXT\n"+
		"sasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password=admin-pw\n")
	weir := func(args ...string) {
		t.Helper()
		if out, err := runWeir(t, "", append(args, "--brokers", addr, "--command-config", props)...); err != nil {
			t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	weir("topic", "create", "shown", "--partitions", "1")
	weir("topic", "create", "secret", "--partitions", "1")
	weir("acl", "add", "--allow-principal", "User:viewer", "--operation", "describe", "--topic", "shown")
	weir("acl", "add", "--allow-principal", "User:viewer", "--operation", "describe", "--transactional-id", "held")

	ctx := testCtx(t)
	held := newClient(t, addr, kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism()),
		kgo.TransactionalID("held"), kgo.DefaultProduceTopic("shown"))
	if err := held.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := held.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	page := func(method, path, user, pass string, form url.Values, origin ...string) (int, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://"+admin+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if method == http.MethodPost {
			req.Header.Set("Origin", "http://"+admin) // as the console's own page posts it
		}
		for _, o := range origin {
			req.Header.Set("Origin", o)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		text, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(text)
	}

	if code, _ := page("GET", "/topics", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("without a login: %d, want 401", code)
	}
	if code, _ := page("GET", "/topics", "viewer", "wrong", nil); code != http.StatusUnauthorized {
		t.Errorf("with a wrong password: %d, want 401", code)
	}
	if code, _ := page("GET", "/topics", "nobody", "pw", nil); code != http.StatusUnauthorized {
		t.Errorf("as a user with no SCRAM credential: %d, want 401", code)
	}
	code, body := page("GET", "/topics", "viewer", "viewer-pw", nil)
	if code != http.StatusOK || !strings.Contains(body, `data-topic="shown"`) || strings.Contains(body, `data-topic="secret"`) {
		t.Errorf("viewer's topics page (%d) must list shown and not secret:\n%s", code, body)
	}
	if code, body := page("GET", "/topics", "admin", "admin-pw", nil); code != http.StatusOK || !strings.Contains(body, `data-topic="secret"`) {
		t.Errorf("admin's topics page (%d) must list secret:\n%s", code, body)
	}

	d, err := newAdminWith(t, addr, kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism())).DescribeTransactions(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	abort := url.Values{"id": {"held"}, "producer_id": {strconv.FormatInt(d["held"].ProducerID, 10)},
		"epoch": {strconv.Itoa(int(d["held"].ProducerEpoch))}, "start": {strconv.FormatInt(d["held"].StartTimestamp, 10)}, "confirm": {"yes"}}
	if code, body := page("POST", "/transactions/abort", "admin", "admin-pw", abort, "http://elsewhere.example"); code != http.StatusForbidden {
		t.Errorf("admin's abort posted from another origin: %d, want 403:\n%s", code, body)
	}
	if state := txnState(t, addr, "held"); state != "Ongoing" {
		t.Fatalf("after a cross-origin abort the transaction is %s, want Ongoing", state)
	}
	if code, body := page("POST", "/transactions/abort", "viewer", "viewer-pw", abort); code != http.StatusForbidden {
		t.Errorf("viewer, with Describe only, aborting: %d, want 403:\n%s", code, body)
	}
	if state := txnState(t, addr, "held"); state != "Ongoing" {
		t.Fatalf("after viewer's refused abort the transaction is %s, want Ongoing", state)
	}
	if code, body := page("POST", "/transactions/abort", "admin", "admin-pw", abort); code != http.StatusOK || !strings.Contains(body, `id="notice"`) {
		t.Errorf("admin aborting: %d, want the transactions page with the notice:\n%s", code, body)
	}
	if state := txnState(t, addr, "held"); state != "CompleteAbort" {
		t.Errorf("after admin's abort the transaction is %s, want CompleteAbort", state)
	}
}

// txnState is a transactional id's state, asked as the super user.
func txnState(t *testing.T, addr, id string) string {
	t.Helper()
	d, err := newAdminWith(t, addr, kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism())).DescribeTransactions(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return d[id].State
}

// newAdminWith is an admin client of addr with opts (a login).
func newAdminWith(t *testing.T, addr string, opts ...kgo.Opt) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newClient(t, addr, opts...))
}
