package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func postForm(t *testing.T, u string, form url.Values, origin string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The page loads nothing from another origin and runs no inline script,
// under a policy that forbids both; its script is served from the same
// origin.
func TestPageNeedsNothingFromAnotherOrigin(t *testing.T) {
	s, err := New("/nonexistent/weir", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, body := get(t, srv.URL+"/simulator")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("page: %s", resp.Status)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("policy %q allows inline or outside scripts", csp)
	}
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]|https?://|style=`).MatchString(body) {
		t.Errorf("page has inline script or style, or an absolute URL:\n%s", body)
	}
	for _, asset := range []string{"/simulator/static/simulator.js", "/simulator/static/simulator.css"} {
		if r, _ := get(t, srv.URL+asset); r.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", asset, r.Status)
		}
	}
	r, state := get(t, srv.URL+"/simulator/state")
	var st struct{ State, Claim string }
	if err := json.Unmarshal([]byte(state), &st); err != nil || r.StatusCode != http.StatusOK || st.State != "idle" {
		t.Errorf("state before any session: %s %q (%v)", r.Status, state, err)
	}
}

// Settings Kafka's producer refuses are refused with its reason, before
// any process starts; a post from another origin is refused; a disabled
// simulator says why.
func TestStartRefusesWhatKafkaRefusesAndOtherOrigins(t *testing.T) {
	s, err := New("/nonexistent/weir", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	form := url.Values{"acks": {"1"}, "retries": {"on"}, "idempotence": {"on"}, "maxInFlight": {"5"}, "commit": {"after"}, "seed": {"1"}}
	code, body := postForm(t, srv.URL+"/simulator/start", form, "")
	if code != http.StatusBadRequest || !strings.Contains(body, "acks to all in order to use the idempotent producer") {
		t.Errorf("idempotence with acks=1: %d %s", code, body)
	}
	form.Set("acks", "all")
	if code, body := postForm(t, srv.URL+"/simulator/start", form, "http://elsewhere.example"); code != http.StatusForbidden {
		t.Errorf("cross-origin start: %d %s", code, body)
	}
	if code, body := postForm(t, srv.URL+"/simulator/fault/drop-ack", nil, ""); code != http.StatusConflict || !strings.Contains(body, "start one first") {
		t.Errorf("fault without a session: %d %s", code, body)
	}
	s.Disable("security is on")
	if code, body := postForm(t, srv.URL+"/simulator/start", form, ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "security is on") {
		t.Errorf("disabled simulator: %d %s", code, body)
	}
}

// faultsOffered lists the data-fault buttons of the page at base.
func faultsOffered(t *testing.T, base string) []string {
	t.Helper()
	_, body := get(t, base+"/simulator")
	var out []string
	for _, m := range regexp.MustCompile(`data-fault="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// A simulator whose sessions run a three-node cluster offers the faults
// that act on its nodes (kill the leader, kill two nodes) in place of
// "kill the broker", and one whose sessions run one broker does not; a
// cluster of any other size is refused.
func TestClusterSessionsOfferNodeFaultsInPlaceOfTheBrokerKill(t *testing.T) {
	one, err := New("/nonexistent/weir", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := one.UseCluster(5); err == nil || !strings.Contains(err.Error(), "3 nodes") {
		t.Errorf("a cluster of 5 nodes: %v, want it refused", err)
	}
	srv := httptest.NewServer(one)
	defer srv.Close()
	if got, want := strings.Join(faultsOffered(t, srv.URL), " "), "drop-ack cut-connection kill-broker kill-consumer"; got != want {
		t.Errorf("one-broker page offers %q, want %q", got, want)
	}

	cluster, err := New("/nonexistent/weir", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.UseCluster(3); err != nil {
		t.Fatal(err)
	}
	csrv := httptest.NewServer(cluster)
	defer csrv.Close()
	if got, want := strings.Join(faultsOffered(t, csrv.URL), " "), "drop-ack cut-connection kill-leader kill-two-nodes kill-consumer"; got != want {
		t.Errorf("cluster page offers %q, want %q", got, want)
	}
	r, state := get(t, csrv.URL+"/simulator/state")
	var st struct {
		Settings struct{ Cluster int } `json:"settings"`
	}
	if err := json.Unmarshal([]byte(state), &st); err != nil || r.StatusCode != http.StatusOK || st.Settings.Cluster != 3 {
		t.Errorf("state of the cluster simulator: %s %q (%v), want settings with cluster 3", r.Status, state, err)
	}
}
