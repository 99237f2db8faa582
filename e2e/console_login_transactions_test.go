package e2e

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// With SASL on, no console page is served without a valid login: a
// user name with a SCRAM credential and a wrong password gets 401 on
// every page, the transactions page included. That page must not swallow
// the failed login as a per-coordinator error and render an empty list
// ("no open transactions") under the user's name while one is open. The
// correct outcome: 401 with a wrong password; the open transaction
// listed with the right one.
func TestConsoleTransactionsPageNeedsAValidLogin(t *testing.T) {
	dir := t.TempDir()
	if out, err := runWeir(t, "admin-pw\n", "user", "add", "admin", "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", dir); err != nil {
		t.Fatalf("weir user add admin: %v\n%s", err, out)
	}
	admin := "127.0.0.1:" + strconv.Itoa(freePortRange(t, 1))
	b := startBrokerIn(t, dir, map[string]string{
		"listeners":             "SASL_PLAINTEXT://127.0.0.1:0",
		"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":           "User:admin",
		"admin.listeners":       admin,
	})
	addr := b.Addr()
	ctx := testCtx(t)
	login := kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism())
	adm := newAdminWith(t, addr, login)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "login-held"); err != nil {
		t.Fatal(err)
	}
	held := newClient(t, addr, login, kgo.TransactionalID("login-held"), kgo.DefaultProduceTopic("login-held"))
	if err := held.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := held.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	get := func(pass string) (int, string) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+admin+"/transactions", nil)
		req.SetBasicAuth("admin", pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("admin-pw"); code != http.StatusOK || !strings.Contains(body, `data-txn="login-held"`) {
		t.Fatalf("with the right password the transactions page (%d) must list login-held:\n%s", code, body)
	}
	if code, body := get("wrong-pw"); code != http.StatusUnauthorized {
		t.Errorf("with a wrong password the transactions page answered %d, want 401 (it shows no open transaction while login-held is open: %v)",
			code, !strings.Contains(body, `data-txn="login-held"`))
	}
}
