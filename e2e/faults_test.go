package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Each response fault point fires as its rule says: close sends the
// response and then closes the connection, delay still answers, drop
// closes without answering (the lost acknowledgement is covered with a
// real producer in idempotence_test.go, exit in the crash tests).
func TestResponseFaultPointsFire(t *testing.T) {
	b, inj := startFaultyBroker(t, "metadata.response=close#1,apiversions.response=delay:50ms#1,listgroups.response=drop#1")

	conn := dialRaw(t, b.Addr())
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(9)
	id := conn.send(req)
	conn.recv(req.ResponseKind(), id)
	conn.expectClosed()
	if inj.Fired("metadata.response") != 1 {
		t.Fatalf("close fired %d times", inj.Fired("metadata.response"))
	}

	conn = dialRaw(t, b.Addr())
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	id = conn.send(av)
	resp := av.ResponseKind().(*kmsg.ApiVersionsResponse)
	conn.recv(resp, id)
	if resp.ErrorCode != 0 || inj.Fired("apiversions.response") != 1 {
		t.Fatalf("delayed ApiVersions: error %d, fired %d", resp.ErrorCode, inj.Fired("apiversions.response"))
	}

	conn = dialRaw(t, b.Addr())
	lg := kmsg.NewPtrListGroupsRequest()
	lg.SetVersion(3)
	conn.send(lg)
	conn.expectClosed()
	if inj.Fired("listgroups.response") != 1 {
		t.Fatalf("drop fired %d times", inj.Fired("listgroups.response"))
	}
}

// A broker started with --unsafe-faults takes fault rules on its admin
// listener from programs (the delivery simulator's sessions), never from
// a web page: a POST that says where its page came from (Origin or
// Referer, which browsers always send) is refused and adds no rule, so
// another site cannot make the broker drop answers or exit.
func TestFaultRulesAreNotTakenFromAWebPage(t *testing.T) {
	base := freePortRange(t, 1)
	admin := "127.0.0.1:" + strconv.Itoa(base+100)
	startProc(t, "127.0.0.1:"+strconv.Itoa(base), t.TempDir(), "--admin-listen", admin, "--unsafe-faults", "none")
	post := func(header, value string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+admin+"/unsafe/faults", strings.NewReader("produce.response=drop#1"))
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set(header, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, h := range [][2]string{{"Origin", "http://evil.example"}, {"Referer", "http://evil.example/page"}, {"Origin", "http://" + admin}} {
		if code := post(h[0], h[1]); code != http.StatusForbidden {
			t.Errorf("POST /unsafe/faults with %s: %s answered %d, want 403", h[0], h[1], code)
		}
	}
	if code := post("", ""); code != http.StatusOK {
		t.Errorf("POST /unsafe/faults from a program answered %d, want 200", code)
	}
}
