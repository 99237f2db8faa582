package e2e

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/testsvc"
)

// replaceFile writes content beside path and renames it over path, as
// certificate tools do.
func replaceFile(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// The TLS files are reloaded when they change, without a restart, and
// that holds for the nodes' own connections too: a node dials its peers
// with the truststore it has now, not the one it started with. A
// three-node mutual-TLS cluster has its CA rotated (every node's keystore
// and the truststore replaced by ones of a new CA, the old CA dropped),
// then one node restarts, as nodes do, so new connections between nodes
// are needed. Every node must dial its peers trusting the new CA: an
// acks=all write with min.insync.replicas=3 to each partition, whoever
// leads it, is acknowledged.
func TestClusterNodesTrustTheReloadedTruststoreWhenTheyDialPeers(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, dir)
	c, err := testsvc.StartCluster(weirBin, t.TempDir(), 3,
		"--set", "listener.security.protocol.map=PLAINTEXT:SSL,CONTROLLER:SSL",
		"--set", "ssl.keystore.location="+f.keystore,
		"--set", "ssl.truststore.location="+f.truststore,
		"--set", "ssl.client.auth=required",
		"--set", "replica.lag.time.max.ms=3000")
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
	oldOpt := kgo.DialTLSConfig(f.clientTLS(f.clientCert(t, pkix.Name{CommonName: "app"})))
	waitBrokersListed(t, seeds, 3, oldOpt)

	newCA, err := testsvc.NewCA("rotated CA")
	if err != nil {
		t.Fatal(err)
	}
	ks, _, err := newCA.Issue(pkix.Name{CommonName: "broker"}, "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, f.truststore, newCA.PEM)
	replaceFile(t, f.keystore, ks)
	_, app, err := newCA.Issue(pkix.Name{CommonName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	newConf := &tls.Config{RootCAs: newCA.Pool(), Certificates: []tls.Certificate{app}, MinVersion: tls.VersionTLS12}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range seeds {
		for {
			conn, err := tls.Dial("tcp", s, newConf)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s never presented the rotated certificate: %v", s, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	c.Terminate(2)
	if err := c.Start(2); err != nil {
		t.Fatal(err)
	}
	newOpt := kgo.DialTLSConfig(newConf)
	waitBrokersListed(t, seeds, 3, newOpt)
	cl := newClient(t, strings.Join(seeds, ","), newOpt, kgo.SeedBrokers(seeds...))
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	three := "3"
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": &three}, "after-rotation"); err != nil {
		t.Fatal(err)
	}
	// With min.insync.replicas=3 an acks=all write to a partition is
	// acknowledged only once both followers fetched it from its leader.
	pcl := newClient(t, strings.Join(seeds, ","), newOpt, kgo.SeedBrokers(seeds...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(45*time.Second))
	state := func() []string {
		td, _ := adm.ListTopics(ctx, "after-rotation")
		var out []string
		for _, tp := range td["after-rotation"].Partitions.Sorted() {
			out = append(out, fmt.Sprintf("p%d leader %d isr %v", tp.Partition, tp.Leader, tp.ISR))
		}
		return out
	}
	for p := range int32(3) {
		done := make(chan error, 1)
		go func() {
			done <- pcl.ProduceSync(ctx, &kgo.Record{Topic: "after-rotation", Partition: p, Value: []byte("x")}).FirstErr()
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("after the CA rotation and a restart of node 3, an acks=all write to partition %d failed: %v (%v); a node that did not restart still verifies the peers it dials against the CA it started with", p, err, state())
			}
		case <-time.After(50 * time.Second):
			t.Fatalf("after the CA rotation and a restart of node 3, an acks=all write to partition %d was not answered within 50 s (%v); a node that did not restart still verifies the peers it dials against the CA it started with", p, state())
		}
	}
}
