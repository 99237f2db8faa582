package e2e

import (
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
