package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-broker/weir/internal/testsvc"
)

// A cluster with a listener for clients and another for its own traffic
// (Kafka's inter.broker.listener.name, KIP-103): clients authenticate
// with SCRAM over TLS on CLIENT, and the nodes reach each other on
// REPLICATION with their certificates (SSL, the subject mapped to the
// super user broker), never through CLIENT, where they hold no password.
// Metadata on CLIENT advertises each node's CLIENT address, and the
// followers join the ISR, which they can only do over REPLICATION.
func TestClusterReplicatesOverTheInterBrokerListenerItNames(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, t.TempDir())
	for i := 1; i <= 3; i++ {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node-%d", i))
		if out, err := runWeir(t, "admin-secret\n", "user", "add", "admin", "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", nodeDir); err != nil {
			t.Fatalf("weir user add --data: %v\n%s", err, out)
		}
	}
	c, err := testsvc.StartCluster(weirBin, dir, 3,
		"--listen", "CLIENT://{addr},REPLICATION://127.0.0.1:{spare_port}",
		"--set", "listener.security.protocol.map=CLIENT:SASL_SSL,REPLICATION:SSL,CONTROLLER:SSL",
		"--set", "inter.broker.listener.name=REPLICATION",
		"--set", "ssl.keystore.location="+f.keystore,
		"--set", "ssl.truststore.location="+f.truststore,
		"--set", "ssl.client.auth=requested",
		"--set", "ssl.principal.mapping.rules=RULE:^CN=([a-z]+)$/$1/,DEFAULT",
		"--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"--set", "super.users=User:broker;User:admin",
		"--set", "allow.everyone.if.no.acl.found=false",
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
	clientPorts := map[int32]bool{}
	for _, nd := range c.Nodes {
		seeds = append(seeds, nd.Addr)
		clientPorts[portOf(t, nd.Addr)] = true
	}
	tlsOpt := kgo.DialTLSConfig(f.clientTLS())
	auth := kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism())
	waitBrokersListed(t, seeds, 3, auth, tlsOpt)
	for _, p := range brokerPorts(t, seeds[0], auth, tlsOpt, kgo.SeedBrokers(seeds...)) {
		if !clientPorts[p] {
			t.Fatalf("Metadata on CLIENT advertises port %d, not a CLIENT listener's (%v)", p, clientPorts)
		}
	}

	cl := newClient(t, seeds[0], auth, tlsOpt, kgo.SeedBrokers(seeds...))
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "replicated"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "replicated", Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("acks=all write %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		td, err := adm.ListTopics(ctx, "replicated")
		if err == nil && len(td["replicated"].Partitions[0].ISR) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the followers never joined the ISR over REPLICATION: %v %v", td, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if recs := consumeAll(t, strings.Join(seeds, ","), "replicated", 20, auth, tlsOpt, kgo.SeedBrokers(seeds...)); len(recs) != 20 {
		t.Fatalf("read %d records back, want 20", len(recs))
	}
}
