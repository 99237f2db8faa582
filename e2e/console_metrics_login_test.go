package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// With SASL on, the admin listener's APIs, /metrics among them, ask for a
// SCRAM login as the console does: per-group and per-partition series
// name every consumer group and topic, which a client of the broker sees
// only with Describe on them. The correct outcome: /metrics without a
// login answers 401 and names no group or topic.
func TestAdminListenerWithSASLNamesNoGroupOrTopicInMetricsWithoutALogin(t *testing.T) {
	dir := t.TempDir()
	if out, err := runWeir(t, "admin-pw\n", "user", "add", "admin", "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", dir); err != nil {
		t.Fatalf("weir user add admin: %v\n%s", err, out)
	}
	admin := "127.0.0.1:" + strconv.Itoa(freePortRange(t, 1))
	b := startBrokerIn(t, dir, map[string]string{
		"listeners":                      "SASL_PLAINTEXT://127.0.0.1:0",
		"authorizer.class.name":          "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":                    "User:admin",
		"allow.everyone.if.no.acl.found": "false",
		"admin.listeners":                admin,
	})
	ctx := testCtx(t)
	adm := newAdminWith(t, b.Addr(), kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism()))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "acquisition-target"); err != nil {
		t.Fatal(err)
	}
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "acquisition-target", Partition: 0, At: 0, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(ctx, "merger-team", offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a login answered %d, want 401", resp.StatusCode)
	}
	for _, name := range []string{"acquisition-target", "merger-team"} {
		if strings.Contains(string(body), name) {
			t.Errorf("GET /metrics without a login names %q", name)
		}
	}

	// Prometheus scrapes with basic_auth as a SCRAM user.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", "admin-pw")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "weir_") {
		t.Errorf("GET /metrics as admin by basic auth answered %d, want 200 with the metrics:\n%.500s", resp.StatusCode, body)
	}
}
