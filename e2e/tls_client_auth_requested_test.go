package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/testsvc"
	"github.com/weir-broker/weir/pkg/weir"
)

// With ssl.client.auth=requested a certificate is optional: a client
// without one is served as User:ANONYMOUS, a client with one the
// truststore's CA signed is the principal its subject maps to (here a
// super user), and a certificate another CA signed is refused at the
// handshake, as Kafka does. ACLs tell the two served principals apart: only the certificate's
// may create a topic.
func TestRequestedClientAuthServesAnonymousClientsAndNamesCertificateHolders(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, dir)
	b, err := weir.Start(context.Background(), weir.Config{DataDir: filepath.Join(dir, "data"), Settings: map[string]string{
		"listeners":                      "SSL://127.0.0.1:0",
		"ssl.keystore.location":          f.keystore,
		"ssl.truststore.location":        f.truststore,
		"ssl.client.auth":                "requested",
		"ssl.principal.mapping.rules":    `RULE:^CN=([a-z-]+)$/$1/,DEFAULT`,
		"authorizer.class.name":          "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":                    "User:ops",
		"allow.everyone.if.no.acl.found": "false",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	addr := b.ListenerAddr("SSL")
	create := func(conf *tls.Config, topic string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cl := newClient(t, addr, kgo.DialTLSConfig(conf), kgo.RequestRetries(0))
		defer cl.Close()
		resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic)
		if err != nil {
			return err
		}
		return resp.Err
	}

	if err := create(f.clientTLS(), "anonymous-topic"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("a client without a certificate creating a topic: %v, want TOPIC_AUTHORIZATION_FAILED (served as User:ANONYMOUS)", err)
	}
	if err := create(f.clientTLS(f.clientCert(t, pkix.Name{CommonName: "ops"})), "ops-topic"); err != nil {
		t.Fatalf("the super user named by its certificate creating a topic: %v", err)
	}
	other, err := testsvc.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	_, foreign, err := other.Issue(pkix.Name{CommonName: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	// Go's client, like Java's, sends no certificate the server's list of
	// CAs does not name; this one insists, as a forger would.
	forger := f.clientTLS()
	forger.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }
	if err := create(forger, "foreign-topic"); err == nil || errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("a certificate another CA signed: %v, want the TLS handshake refused", err)
	}
}
