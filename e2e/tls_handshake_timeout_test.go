package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-broker/weir/pkg/weir"
)

// A client of a TLS listener that connects and never sends its
// ClientHello holds a connection slot until the broker gives up on the
// handshake (issue 16, hostile input): the broker closes it after its
// handshake timeout (10 s), well before the client's own 30 s deadline.
func TestSSLListenerDropsAClientThatNeverStartsTheTLSHandshake(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, dir)
	b, err := weir.Start(context.Background(), weir.Config{DataDir: filepath.Join(dir, "data"), Settings: map[string]string{
		"listeners":             "SSL://127.0.0.1:0",
		"ssl.keystore.location": f.keystore,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	c, err := net.DialTimeout("tcp", b.ListenerAddr("SSL"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !(errors.Is(err, io.EOF) || isReset(err)) || isTimeout(err) {
		t.Fatalf("a client that never sent a ClientHello: read %d bytes, %v; want the connection closed by the broker", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
