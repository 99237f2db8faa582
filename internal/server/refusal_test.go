package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// idleHandler serves nothing: the test sends no request.
type idleHandler struct{}

func (idleHandler) Handle(context.Context, *Conn, kmsg.Request) Reply { return nil }
func (idleHandler) APIVersions() []kmsg.ApiVersionsResponseApiKey     { return nil }

// Clients reconnecting to a node at max.connections are each refused,
// but the log gets one line per window, not one per connection.
func TestConnectionsRefusedAtMaxConnectionsAreLoggedOncePerWindow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	s := New(ln, idleHandler{}, Limits{MaxFrameBytes: 1 << 20, MaxConnections: 1, MaxInflightReqs: 1}, slog.New(slog.NewTextHandler(out, nil)), nil)
	defer s.Close()
	held, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	time.Sleep(50 * time.Millisecond) // the first connection takes the one slot
	for i := range 20 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("connection %d beyond max.connections=1 was not closed: %d %v", i, n, err)
		}
		c.Close()
	}
	if n := strings.Count(out.String(), "max.connections reached"); n != 1 {
		t.Fatalf("%d log lines for 20 refused connections, want 1:\n%s", n, out.String())
	}
}
