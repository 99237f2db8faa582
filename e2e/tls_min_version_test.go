package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-broker/weir/pkg/weir"
)

// TLS listeners speak TLS 1.2 at least (issue 16): a client that offers
// only TLS 1.1 fails the handshake, one that offers TLS 1.2 completes it.
func TestTLSListenerRefusesVersionsBelowTLS12(t *testing.T) {
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
	handshake := func(maxVersion uint16) error {
		conf := f.clientTLS()
		conf.MinVersion, conf.MaxVersion = tls.VersionTLS10, maxVersion
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", b.ListenerAddr("SSL"), conf)
		if err == nil {
			c.Close()
		}
		return err
	}
	// The broker must be the one refusing (an alert it sends), not the
	// client's own library.
	var op *net.OpError
	if err := handshake(tls.VersionTLS11); !errors.As(err, &op) || op.Op != "remote error" {
		t.Fatalf("a TLS 1.1 client: %v, want the broker's alert refusing the version", err)
	}
	if err := handshake(tls.VersionTLS12); err != nil {
		t.Fatalf("a TLS 1.2 client: %v", err)
	}
}
