package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/testsvc"
	"github.com/weir-broker/weir/pkg/weir"
)

// tlsFiles is a CA and a broker key pair for 127.0.0.1, written where
// ssl.truststore.location and ssl.keystore.location can name them.
type tlsFiles struct {
	ca         *testsvc.CA
	keystore   string
	truststore string
}

func newTLSFiles(t *testing.T, dir string) tlsFiles {
	t.Helper()
	ca, err := testsvc.NewCA("weir test CA")
	if err != nil {
		t.Fatal(err)
	}
	ks, _, err := ca.Issue(pkix.Name{CommonName: "broker"}, "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	f := tlsFiles{ca: ca, keystore: filepath.Join(dir, "keystore.pem"), truststore: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(f.keystore, ks, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.truststore, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// clientCert issues a client key pair with subject cn.
func (f tlsFiles) clientCert(t *testing.T, subject pkix.Name) tls.Certificate {
	t.Helper()
	_, pair, err := f.ca.Issue(subject)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func (f tlsFiles) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: f.ca.Pool(), Certificates: certs, MinVersion: tls.VersionTLS12}
}

// brokerPorts lists the ports Metadata answers with on addr's listener.
func brokerPorts(t *testing.T, addr string, opts ...kgo.Opt) []int32 {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addr, opts...))
	md, err := adm.BrokerMetadata(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var ports []int32
	for _, b := range md.Brokers {
		ports = append(ports, b.Port)
	}
	return ports
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	for _, c := range p {
		n = n*10 + int32(c-'0')
	}
	return n
}

// A broker with a PLAINTEXT and an SSL listener serves each protocol on
// its own port: franz-go and kcat produce and consume over TLS, Metadata
// on each listener names that listener's address (KIP-103), and a
// plaintext client sent to the TLS port gets no Kafka answer.
func TestSSLListenerServesClientsBesidePlaintextAndAdvertisesItsOwnAddress(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, dir)
	b, err := weir.Start(context.Background(), weir.Config{DataDir: filepath.Join(dir, "data"), Settings: map[string]string{
		"listeners":             "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
		"ssl.keystore.location": f.keystore,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	plain, secure := b.ListenerAddr("PLAINTEXT"), b.ListenerAddr("SSL")
	tlsOpt := kgo.DialTLSConfig(f.clientTLS())

	if got := brokerPorts(t, secure, tlsOpt); len(got) != 1 || got[0] != portOf(t, secure) {
		t.Fatalf("Metadata over SSL names ports %v, want the SSL listener's %d", got, portOf(t, secure))
	}
	if got := brokerPorts(t, plain); len(got) != 1 || got[0] != portOf(t, plain) {
		t.Fatalf("Metadata over PLAINTEXT names ports %v, want the PLAINTEXT listener's %d", got, portOf(t, plain))
	}

	cl := newClient(t, secure, tlsOpt, kgo.AllowAutoTopicCreation())
	for i := range 10 {
		if err := cl.ProduceSync(testCtx(t), &kgo.Record{Topic: "sec", Value: []byte{byte('0' + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if recs := consumeAll(t, secure, "sec", 10, tlsOpt); len(recs) != 10 {
		t.Fatalf("franz-go over TLS read %d records, want 10", len(recs))
	}
	out, err := runKcat(t, "", "-C", "-b", secure, "-t", "sec", "-o", "beginning", "-e", "-q",
		"-X", "security.protocol=ssl", "-X", "ssl.ca.location="+f.truststore)
	if err != nil {
		t.Fatalf("kcat over TLS: %v\n%s", err, out)
	}
	if lines := strings.Fields(string(out)); len(lines) != 10 {
		t.Fatalf("kcat over TLS read %q, want 10 records", out)
	}

	// A plaintext Kafka client on the TLS port: no answer.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw := newClient(t, secure, kgo.RequestRetries(0))
	if _, err := kadm.NewClient(raw).BrokerMetadata(ctx); err == nil {
		t.Fatal("a plaintext client got Metadata from the SSL listener")
	}
}

// With ssl.client.auth=required a client must present a certificate the
// truststore's CA signed; its subject, mapped by
// ssl.principal.mapping.rules, names the principal, and a subject no
// rule maps is refused.
func TestMutualTLSRefusesClientsWithoutAMappableCertificate(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, dir)
	b, err := weir.Start(context.Background(), weir.Config{DataDir: filepath.Join(dir, "data"), Settings: map[string]string{
		"listeners":                   "SSL://127.0.0.1:0",
		"ssl.keystore.location":       f.keystore,
		"ssl.truststore.location":     f.truststore,
		"ssl.client.auth":             "required",
		"ssl.principal.mapping.rules": `RULE:^CN=([a-z-]+),O=Acme$/$1/`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	addr := b.ListenerAddr("SSL")
	metadataWith := func(conf *tls.Config) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl := newClient(t, addr, kgo.DialTLSConfig(conf), kgo.RequestRetries(0))
		_, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		return err
	}
	if err := metadataWith(f.clientTLS()); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	if err := metadataWith(f.clientTLS(f.clientCert(t, pkix.Name{CommonName: "orders-app", Organization: []string{"Acme"}}))); err != nil {
		t.Fatalf("a client with a mapped certificate was refused: %v", err)
	}
	if err := metadataWith(f.clientTLS(f.clientCert(t, pkix.Name{CommonName: "orders-app", Organization: []string{"Evil"}}))); err == nil {
		t.Fatal("a client whose subject no mapping rule matches was served")
	}
	other, err := testsvc.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	_, foreign, err := other.Issue(pkix.Name{CommonName: "orders-app", Organization: []string{"Acme"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := metadataWith(f.clientTLS(foreign)); err == nil {
		t.Fatal("a client whose certificate another CA signed was served")
	}
}

// The keystore is reloaded when its file changes: new connections get
// the new certificate without a restart.
func TestSSLListenerPresentsANewCertificateOnceItsFileChanges(t *testing.T) {
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
	addr := b.ListenerAddr("SSL")
	presented := func() string {
		conn, err := tls.Dial("tcp", addr, f.clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := presented(); got != "broker" {
		t.Fatalf("presented %q, want broker", got)
	}
	ks, _, err := f.ca.Issue(pkix.Name{CommonName: "broker-renewed"}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// Written beside and renamed, as certificate tools do.
	if err := os.WriteFile(f.keystore+".new", ks, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.keystore+".new", f.keystore); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for presented() != "broker-renewed" {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was never presented")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A three-node cluster whose only listener speaks TLS and requires client
// certificates: the nodes' own traffic (registration, heartbeats,
// replica fetches, ISR changes) authenticates with the node's key pair,
// so the brokers get unfenced, followers join the ISR and acks=all
// writes are acknowledged and read back.
func TestClusterReplicatesOverMutualTLSBetweenBrokers(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, dir)
	c, err := testsvc.StartCluster(weirBin, t.TempDir(), 3,
		"--set", "listener.security.protocol.map=PLAINTEXT:SSL,CONTROLLER:SSL",
		"--set", "ssl.keystore.location="+f.keystore,
		"--set", "ssl.truststore.location="+f.truststore,
		"--set", "ssl.client.auth=required",
		"--set", "min.insync.replicas=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for i := range c.Nodes {
				t.Logf("node %d log:\n%s", i+1, c.Log(i))
			}
		}
	})
	var seeds []string
	for _, nd := range c.Nodes {
		seeds = append(seeds, nd.Addr)
	}
	tlsOpt := kgo.DialTLSConfig(f.clientTLS(f.clientCert(t, pkix.Name{CommonName: "app"})))
	cl := newClient(t, strings.Join(seeds, ","), tlsOpt, kgo.SeedBrokers(seeds...))
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	waitBrokersListed(t, seeds, 3, tlsOpt)
	deadline := time.Now().Add(60 * time.Second)
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "tls-replicated"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "tls-replicated", Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("acks=all write %d: %v", i, err)
		}
	}
	for {
		td, err := adm.ListTopics(ctx, "tls-replicated")
		if err == nil {
			if p := td["tls-replicated"].Partitions[0]; len(p.ISR) == 3 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the followers never joined the ISR over TLS: %v %v", td, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if recs := consumeAll(t, strings.Join(seeds, ","), "tls-replicated", 20, tlsOpt, kgo.SeedBrokers(seeds...)); len(recs) != 20 {
		t.Fatalf("read %d records back, want 20", len(recs))
	}
}

// waitBrokersListed waits until Metadata, asked by a new client each time
// (a client's own metadata may be older), lists n brokers.
func waitBrokersListed(t *testing.T, seeds []string, n int, opts ...kgo.Opt) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RequestRetries(0)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		cl.Close()
		cancel()
		if err == nil && len(md.Brokers) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Metadata never listed %d brokers: %v %v", n, md.Brokers, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
