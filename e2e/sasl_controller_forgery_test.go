package e2e

import (
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/security"
	"github.com/weir-broker/weir/internal/testsvc"
)

// writeRaftFrame sends m as the metadata quorum's transport frames it: a
// 4-byte length, then the protobuf message.
func writeRaftFrame(t *testing.T, c net.Conn, m *pb.Message) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := c.Write(append(hdr[:], b...)); err != nil {
		t.Logf("raft frame not written: %v", err)
	}
}

// A cluster whose Kafka listeners all require SASL must not let someone
// who merely reaches a controller listener write the metadata log: the
// Raft transport believes the From field a frame claims, and a voter
// accepts from any non-member the proposal that adds it as a learner,
// after which that "learner" may propose any record. So the quorum's
// listener of such a cluster is mutual TLS (CONTROLLER:SSL): a peer
// without a key pair the cluster's CA signed, over plain TCP or over TLS
// without a certificate, proposes a SCRAM credential for a user of its own
// choosing, and the SASL listener must go on refusing that user.
func TestControllerListenerRefusesMetadataRecordsFromAnUnauthenticatedPeer(t *testing.T) {
	dir := t.TempDir()
	if out, err := runWeir(t, "broker-secret\n", "user", "add", "broker", "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", filepath.Join(dir, "node-1")); err != nil {
		t.Fatalf("weir user add --data: %v\n%s", err, out)
	}
	f := newTLSFiles(t, t.TempDir())
	c, err := testsvc.StartCluster(weirBin, dir, 1,
		"--set", "listener.security.protocol.map=PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SSL",
		"--set", "ssl.keystore.location="+f.keystore,
		"--set", "ssl.truststore.location="+f.truststore,
		"--set", "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
		"--set", `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("node log:\n%s", c.Log(0))
		}
	})
	nd := c.Nodes[0]
	waitBrokersListed(t, []string{nd.Addr}, 1, kgo.SASL(scram.Auth{User: "broker", Pass: "broker-secret"}.AsSha512Mechanism()))
	mallory := kgo.SASL(scram.Auth{User: "mallory", Pass: "mallory-pw"}.AsSha256Mechanism())
	if err := metadataErr(t, nd.Addr, mallory); err == nil {
		t.Fatal("mallory was served before anything was forged")
	}

	cred, err := security.NewCredential(security.ScramSHA256, "mallory-pw", security.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	// The quorum's entry format: the proposer, its nonce and sequence, and
	// the metadata records.
	data, err := json.Marshal(map[string]any{"node": 4242, "nonce": 1, "seq": 1,
		"records": []metadata.Record{{Scram: &metadata.ScramRecord{User: "mallory", Mechanism: security.ScramSHA256, Credential: &cred}}}})
	if err != nil {
		t.Fatal(err)
	}
	const forged, voter = uint64(4242), uint64(1)
	cc, err := proto.Marshal(&pb.ConfChange{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: new(forged), Context: []byte("127.0.0.1:9")})
	if err != nil {
		t.Fatal(err)
	}
	join := &pb.Message{Type: pb.MsgProp.Enum(), From: new(forged), To: new(voter),
		Entries: []*pb.Entry{{Type: pb.EntryConfChange.Enum(), Data: cc}}}
	record := &pb.Message{Type: pb.MsgProp.Enum(), From: new(forged), To: new(voter),
		Entries: []*pb.Entry{{Type: pb.EntryNormal.Enum(), Data: data}}}

	deadline := time.Now().Add(10 * time.Second)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		var conn net.Conn
		var err error
		if attempt%2 == 0 {
			conn, err = net.DialTimeout("tcp", nd.ControllerAddr, time.Second)
		} else {
			// TLS that trusts the cluster's CA but holds no key pair of it.
			conn, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", nd.ControllerAddr, f.clientTLS())
			if err != nil {
				continue // refused at the handshake: nothing to forge with
			}
		}
		if err != nil {
			t.Fatalf("controller listener: %v", err)
		}
		writeRaftFrame(t, conn, join)
		time.Sleep(300 * time.Millisecond)
		writeRaftFrame(t, conn, record)
		time.Sleep(300 * time.Millisecond)
		conn.Close()
		if err := metadataErr(t, nd.Addr, mallory); err == nil {
			t.Fatal("a peer that only reached the controller listener, without any credential, created SCRAM user mallory through a forged Raft proposal, and mallory was then served by the SASL listener")
		}
	}
}

// A cluster whose clients must authenticate refuses to start with its
// quorum's listener in plaintext, naming the setting that secures it.
func TestClusterThatAuthenticatesClientsRefusesAPlaintextControllerListener(t *testing.T) {
	_, err := testsvc.StartCluster(weirBin, t.TempDir(), 1,
		"--set", "listener.security.protocol.map=PLAINTEXT:SASL_PLAINTEXT",
		"--set", "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
		"--set", `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="secret";`)
	if err == nil {
		t.Fatal("a SASL cluster started with a plaintext controller listener")
	}
	if !strings.Contains(err.Error(), "CONTROLLER:SSL") {
		t.Fatalf("the refusal does not name the setting that secures the controller listener: %v", err)
	}
}
