package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A broker out of file descriptors (each connection and each partition's
// open segment holds one) refuses connections while it is, and accepts
// again once some close: a failed accept must not end its listener, or
// the broker would serve nobody new for the rest of its life while
// looking alive.
func TestBrokerOutOfFileDescriptorsAcceptsAgainOnceConnectionsClose(t *testing.T) {
	p := startProcVia(t, []string{"sh", "-c", `ulimit -n 96 && exec "$0" "$@"`}, "127.0.0.1:0", t.TempDir())
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// More connections than the limit allows: the kernel completes them
	// (the backlog), the broker cannot accept the later ones.
	for range 150 {
		c, err := net.DialTimeout("tcp", p.addr, 2*time.Second)
		if err != nil {
			break
		}
		held = append(held, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), "too many open files") {
		if time.Now().After(deadline) {
			t.Fatalf("the broker never ran out of file descriptors with %d connections held under a limit of 96", len(held))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	cl := newClient(t, p.addr, kgo.DefaultProduceTopic("after"), kgo.AllowAutoTopicCreation())
	ctx := testCtx(t)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce once the connections closed: %v\n%s", err, p.logs.String())
	}
}

// A broker started with fewer open files allowed than its partitions and
// max.connections may take says so at start, naming the limit and what it
// may need, as operators of Kafka learn to check ulimit -n.
func TestBrokerWarnsAtStartWhenItsOpenFileLimitIsBelowMaxConnections(t *testing.T) {
	p := startProcVia(t, []string{"sh", "-c", `ulimit -n 512 && exec "$0" "$@"`}, "127.0.0.1:0", t.TempDir(), "--set", "max.connections=1000")
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs := p.logs.String()
		if strings.Contains(logs, "open-file limit is below") && strings.Contains(logs, "limit=512") && strings.Contains(logs, "max_connections=1000") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warning naming the open-file limit 512 and max.connections=1000 at start:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
