package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-broker/weir/internal/testsvc"
)

// opensslCA makes, with openssl as a new user would, a CA and a server
// certificate for 127.0.0.1, and returns the CA file and the keystore (the
// server's key, certificate and the CA, in one PEM file).
func opensslCA(t *testing.T, dir string) (ca, keystore string) {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem")
	run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=broker", "-keyout", "server.key", "-out", "server.csr")
	if err := os.WriteFile(filepath.Join(dir, "san.ext"), []byte("subjectAltName=IP:127.0.0.1,DNS:localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
	var ks []byte
	for _, f := range []string{"server.key", "server.pem", "ca.pem"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, b...)
	}
	keystore = filepath.Join(dir, "keystore.pem")
	if err := os.WriteFile(keystore, ks, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "ca.pem"), keystore
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// metadataErr asks addr for Metadata once with opts and returns the error.
func metadataErr(t *testing.T, addr string, opts ...kgo.Opt) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := newClient(t, addr, append(opts, kgo.RequestRetries(0))...)
	defer cl.Close()
	_, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	return err
}

// As a new user would, following the security guide: a CA and a
// certificate made with openssl, the first user written into the data
// directory before the first start, a broker with only a SASL_SSL
// listener and ACLs enforced. Plaintext clients and wrong passwords are
// refused; the admin adds a user through the API; that user can neither
// write, read nor use a transactional id until `weir acl add` grants each,
// and can afterwards, with franz-go, kcat and the bench; `weir acl list`
// shows the grants; once removed, the user is refused.
func TestSASLSSLBrokerWithACLsAsANewUserWould(t *testing.T) {
	dir := t.TempDir()
	ca, keystore := opensslCA(t, dir)
	data := filepath.Join(dir, "data")
	if out, err := runWeir(t, "admin-secret\n", "user", "add", "admin", "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", data); err != nil {
		t.Fatalf("weir user add --data: %v\n%s", err, out)
	}
	p := startProc(t, "SASL_SSL://127.0.0.1:0", data,
		"--set", "ssl.keystore.type=PEM", "--set", "ssl.keystore.location="+keystore,
		"--set", "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
		"--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"--set", "super.users=User:admin", "--set", "allow.everyone.if.no.acl.found=false")
	tlsOpt := kgo.DialTLSConfig(mustTLSConfig(t, ca))
	ctx := testCtx(t)

	if err := metadataErr(t, p.addr); err == nil {
		t.Fatal("a plaintext client was served by the SASL_SSL listener")
	}
	if err := metadataErr(t, p.addr, tlsOpt); err == nil {
		t.Fatal("a client that did not authenticate was served")
	}
	wrong := kgo.SASL(scram.Auth{User: "admin", Pass: "guess"}.AsSha512Mechanism())
	if err := metadataErr(t, p.addr, tlsOpt, wrong); err == nil || !strings.Contains(err.Error(), kerr.SaslAuthenticationFailed.Message) {
		t.Fatalf("a wrong password: %v, want %s", err, kerr.SaslAuthenticationFailed.Message)
	}

	adminProps := writeFile(t, filepath.Join(dir, "admin.properties"), "security.protocol=SASL_SSL\n"+
		"sasl.mechanism=SCRAM-SHA-512\n"+
		`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="admin-secret";`+"\n"+
		"ssl.truststore.location="+ca+"\n")
	asAdmin := func(stdin string, args ...string) string {
		t.Helper()
		out, err := runWeir(t, stdin, append(args, "--brokers", p.addr, "--command-config", adminProps)...)
		if err != nil {
			t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	asAdmin("app-secret\n", "user", "add", "app", "--mechanism", "SCRAM-SHA-256", "--password-stdin")
	if out := asAdmin("", "user", "list"); !strings.Contains(out, "admin\tSCRAM-SHA-512(4096)") || !strings.Contains(out, "app\tSCRAM-SHA-256(4096)") {
		t.Fatalf("weir user list:\n%s", out)
	}
	asAdmin("", "topic", "create", "secured", "--partitions", "1")

	app := kgo.SASL(scram.Auth{User: "app", Pass: "app-secret"}.AsSha256Mechanism())
	produce := func() error {
		cl := newClient(t, p.addr, tlsOpt, app, kgo.RequestRetries(0), kgo.RecordRetries(1), kgo.DisableIdempotentWrite())
		defer cl.Close()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return cl.ProduceSync(pctx, &kgo.Record{Topic: "secured", Value: []byte("v")}).FirstErr()
	}
	transact := func() error {
		cl := newClient(t, p.addr, tlsOpt, app, kgo.TransactionalID("app-tx"), kgo.RequestRetries(0))
		defer cl.Close()
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := cl.ProduceSync(pctx, &kgo.Record{Topic: "secured", Value: []byte("t")}).FirstErr()
		if err == nil {
			return cl.EndTransaction(ctx, kgo.TryCommit)
		}
		cl.EndTransaction(ctx, kgo.TryAbort)
		return err
	}
	kcatRead := func(user, pass string) ([]byte, error) {
		return runKcat(t, "", "-C", "-b", p.addr, "-t", "secured", "-o", "beginning", "-e", "-q",
			"-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-256",
			"-X", "sasl.username="+user, "-X", "sasl.password="+pass, "-X", "ssl.ca.location="+ca)
	}
	if err := produce(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("app writing without an ACL: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := transact(); !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("app using a transactional id without an ACL: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}
	if out, err := kcatRead("app", "app-secret"); err == nil {
		t.Fatalf("kcat as app read without an ACL:\n%s", out)
	}
	// franz-go's Fetch by the topic's name (v12: the app may not learn the
	// topic's id) is answered with the code.
	fetchCode := func() int16 {
		t.Helper()
		cl := newClient(t, p.addr, tlsOpt, app, kgo.RequestRetries(0), kgo.MaxVersions(kversion.V3_0_0()))
		defer cl.Close()
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxWaitMillis, req.MaxBytes = 12, 0, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "secured"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("Fetch as app: %v", err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("Fetch as app answered %+v, want one partition", resp.Topics)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := fetchCode(); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("franz-go fetching as app without an ACL: %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}

	asAdmin("", "acl", "add", "--allow-principal", "User:app", "--operation", "write", "--operation", "read", "--topic", "secured")
	asAdmin("", "acl", "add", "--allow-principal", "User:app", "--operation", "write", "--transactional-id", "app-tx")
	asAdmin("", "acl", "add", "--allow-principal", "User:app", "--operation", "all", "--topic", "bench-", "--resource-pattern-type", "prefixed")
	if err := produce(); err != nil {
		t.Fatalf("app writing with WRITE granted: %v", err)
	}
	if err := transact(); err != nil {
		t.Fatalf("app's transaction with WRITE on its transactional id: %v", err)
	}
	if code := fetchCode(); code != 0 {
		t.Fatalf("franz-go fetching as app with READ granted: %v", kerr.ErrorForCode(code))
	}
	if recs := consumeAll(t, p.addr, "secured", 2, tlsOpt, app, kgo.FetchIsolationLevel(kgo.ReadCommitted())); len(recs) != 2 {
		t.Fatalf("franz-go as app read %d records, want 2", len(recs))
	}
	if out, err := kcatRead("app", "app-secret"); err != nil || len(strings.Fields(string(out))) != 2 {
		t.Fatalf("kcat as app with READ granted: %v\n%s", err, out)
	}
	if out, err := kcatRead("app", "wrong"); err == nil {
		t.Fatalf("kcat with a wrong password read:\n%s", out)
	}
	list := asAdmin("", "acl", "list")
	for _, want := range []string{"User:app\tALLOW\tTOPIC:secured\tLITERAL\tWRITE", "User:app\tALLOW\tTOPIC:secured\tLITERAL\tREAD", "User:app\tALLOW\tTRANSACTIONAL_ID:app-tx\tLITERAL\tWRITE"} {
		if !strings.Contains(list, want) {
			t.Errorf("weir acl list lacks %q:\n%s", want, list)
		}
	}

	// The bench's own clients take the same settings.
	appProps := writeFile(t, filepath.Join(dir, "app.properties"), "security.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-256\n"+
		"sasl.username=app\nsasl.password=app-secret\nssl.ca.location="+ca+"\n")
	for _, sub := range []string{"produce", "consume"} {
		if out, err := runWeir(t, "", "bench", sub, "--topic", "bench-secured", "--records", "1000", "--brokers", p.addr, "--command-config", appProps); err != nil {
			t.Fatalf("weir bench %s over SASL_SSL: %v\n%s", sub, err, out)
		}
	}
	// So does the load generator, whose consumers join a group of their own.
	asAdmin("", "acl", "add", "--allow-principal", "User:app", "--operation", "read", "--group", "weir-bench-", "--resource-pattern-type", "prefixed")
	if out, err := runWeir(t, "", "bench", "--topic", "bench-load-secured", "--rate", "200", "--duration", "500ms", "--warmup", "0s",
		"--brokers", p.addr, "--command-config", appProps); err != nil || !strings.Contains(out, "missing 0") {
		t.Fatalf("weir bench load over SASL_SSL: %v\n%s", err, out)
	}

	asAdmin("", "user", "remove", "app")
	if err := metadataErr(t, p.addr, tlsOpt, app); err == nil {
		t.Fatal("a removed user was served")
	}
}

// mustTLSConfig trusts the CA in caFile.
func mustTLSConfig(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// A SASL_PLAINTEXT broker with one user, for the protocol-level tests.
func startSASLBroker(t *testing.T, settings map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := runWeir(t, "pw\n", "user", "add", "alice", "--mechanism", "SCRAM-SHA-256", "--password-stdin", "--data", dir); err != nil {
		t.Fatalf("weir user add --data: %v\n%s", err, out)
	}
	all := map[string]string{"listeners": "SASL_PLAINTEXT://127.0.0.1:0"}
	for k, v := range settings {
		all[k] = v
	}
	b := startBrokerIn(t, dir, all)
	return b.Addr()
}

// Hostile or confused clients of a SASL listener get Kafka's error codes
// and a closed connection, never service: a request before
// authentication, an unknown mechanism, SaslAuthenticate without a
// handshake, a malformed SCRAM message.
func TestSASLListenerClosesConnectionsThatDoNotAuthenticateProperly(t *testing.T) {
	addr := startSASLBroker(t, map[string]string{"sasl.enabled.mechanisms": "SCRAM-SHA-256,PLAIN"})

	c := dialRaw(t, addr)
	c.send(kmsg.NewPtrMetadataRequest())
	c.expectClosed()

	c = dialRaw(t, addr)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "GSSAPI"
	id := c.send(hs)
	hsr := kmsg.NewPtrSASLHandshakeResponse()
	hsr.Version = 1
	c.recv(hsr, id)
	if hsr.ErrorCode != kerr.UnsupportedSaslMechanism.Code || strings.Join(hsr.SupportedMechanisms, ",") != "SCRAM-SHA-256" {
		t.Fatalf("GSSAPI handshake: code %d, mechanisms %v; want UNSUPPORTED_SASL_MECHANISM and only SCRAM-SHA-256 (PLAIN needs TLS)", hsr.ErrorCode, hsr.SupportedMechanisms)
	}
	c.expectClosed()

	c = dialRaw(t, addr)
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version, auth.SASLAuthBytes = 1, []byte("n,,n=alice,r=abc")
	id = c.send(auth)
	ar := kmsg.NewPtrSASLAuthenticateResponse()
	ar.Version = 1
	c.recv(ar, id)
	if ar.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("SaslAuthenticate without a handshake: code %d, want ILLEGAL_SASL_STATE", ar.ErrorCode)
	}
	c.expectClosed()

	c = dialRaw(t, addr)
	hs.Mechanism = "SCRAM-SHA-256"
	id = c.send(hs)
	c.recv(hsr, id)
	if hsr.ErrorCode != 0 {
		t.Fatalf("SCRAM-SHA-256 handshake: code %d", hsr.ErrorCode)
	}
	auth.SASLAuthBytes = []byte("\x00\xffnot scram")
	id = c.send(auth)
	c.recv(ar, id)
	if ar.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("malformed SCRAM message: code %d, want SASL_AUTHENTICATION_FAILED", ar.ErrorCode)
	}
	c.expectClosed()

	// The broker still serves a proper client.
	if err := metadataErr(t, addr, kgo.SASL(scram.Auth{User: "alice", Pass: "pw"}.AsSha256Mechanism())); err != nil {
		t.Fatalf("a proper client after the hostile ones: %v", err)
	}
}

// A client that connects and never authenticates is dropped.
func TestSASLListenerDropsAClientThatNeverAuthenticates(t *testing.T) {
	addr := startSASLBroker(t, nil)
	c := dialRaw(t, addr)
	c.expectClosed() // within the authentication timeout, before the raw connection's 30 s deadline
}

// With connections.max.reauth.ms (KIP-368) a session ends: a client that
// re-authenticates (franz-go does) keeps its connection, and one that does
// not is closed at its next request after the session's end.
func TestSASLSessionsEndUnlessTheClientReauthenticates(t *testing.T) {
	addr := startSASLBroker(t, map[string]string{
		"connections.max.reauth.ms":  "1500",
		"sasl.enabled.mechanisms":    "SCRAM-SHA-256,PLAIN",
		"sasl.plain.allow.plaintext": "true",
	})
	cl := newClient(t, addr, kgo.SASL(scram.Auth{User: "alice", Pass: "pw"}.AsSha256Mechanism()), kgo.AllowAutoTopicCreation())
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		if err := cl.ProduceSync(testCtx(t), &kgo.Record{Topic: "reauth", Value: []byte{byte(n)}}).FirstErr(); err != nil {
			t.Fatalf("produce %d across re-authentications: %v", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	c := dialRaw(t, addr)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "PLAIN"
	id := c.send(hs)
	hsr := kmsg.NewPtrSASLHandshakeResponse()
	hsr.Version = 1
	c.recv(hsr, id)
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version, auth.SASLAuthBytes = 1, []byte("\x00alice\x00pw")
	id = c.send(auth)
	ar := kmsg.NewPtrSASLAuthenticateResponse()
	ar.Version = 1
	c.recv(ar, id)
	if ar.ErrorCode != 0 || ar.SessionLifetimeMillis != 1500 {
		t.Fatalf("PLAIN: code %d, session lifetime %d ms; want 0 and 1500", ar.ErrorCode, ar.SessionLifetimeMillis)
	}
	md := kmsg.NewPtrMetadataRequest()
	id = c.send(md)
	mdr := kmsg.NewPtrMetadataResponse()
	c.recv(mdr, id)
	time.Sleep(2 * time.Second)
	c.send(md)
	c.expectClosed()
}

// AlterUserScramCredentials refuses what Kafka refuses, per user, and
// changes nothing for a refused user.
func TestAlterUserScramCredentialsRefusesBadChangesPerUser(t *testing.T) {
	addr := startSASLBroker(t, nil)
	cl := newClient(t, addr, kgo.SASL(scram.Auth{User: "alice", Pass: "pw"}.AsSha256Mechanism()))
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	up := func(name string, mech int8, iters int32) kmsg.AlterUserSCRAMCredentialsRequestUpsertion {
		u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = name, mech, iters, []byte("salt"), []byte("salted-password-bytes-32-long!!")
		return u
	}
	del := func(name string, mech int8) kmsg.AlterUserSCRAMCredentialsRequestDeletion {
		d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
		d.Name, d.Mechanism = name, mech
		return d
	}
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{
		up("few-iterations", 1, 100), up("bad-mechanism", 9, 4096), up("twice", 1, 4096), up("twice", 1, 4096),
		up("good", 2, 4096), up("half-bad", 1, 4096),
	}
	req.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{del("nobody", 1), del("half-bad", 2)}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int16{
		"few-iterations": kerr.UnacceptableCredential.Code, "bad-mechanism": kerr.UnsupportedSaslMechanism.Code,
		"twice": kerr.DuplicateResource.Code, "good": 0, "nobody": kerr.ResourceNotFound.Code, "half-bad": kerr.ResourceNotFound.Code,
	}
	for _, r := range resp.Results {
		if w, ok := want[r.User]; !ok || r.ErrorCode != w {
			t.Errorf("user %s: code %d, want %d", r.User, r.ErrorCode, w)
		}
		delete(want, r.User)
	}
	if len(want) != 0 {
		t.Errorf("no result for %v", want)
	}
	users, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users.Sorted() {
		names = append(names, u.User)
	}
	if strings.Join(names, ",") != "alice,good" {
		t.Fatalf("users after the request: %v, want alice and good only (a refused user gets none of its changes)", names)
	}
}

// A three-node cluster whose listener is SASL_SSL with ACLs enforced: the
// nodes verify each other's certificates and authenticate with the user
// their sasl.jaas.config names (bootstrapped into every data directory,
// and a super user), so registration, heartbeats, replica fetches and ISR
// changes all pass TLS, authentication and authorization, and acks=all
// writes are acknowledged and read back; a user without ACLs is refused.
func TestClusterNodesAuthenticateToEachOtherWithSCRAMOverTLS(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, t.TempDir())
	for i := 1; i <= 3; i++ {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node-%d", i))
		if out, err := runWeir(t, "broker-secret\n", "user", "add", "broker", "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", nodeDir); err != nil {
			t.Fatalf("weir user add --data: %v\n%s", err, out)
		}
	}
	c, err := testsvc.StartCluster(weirBin, dir, 3,
		"--set", "listener.security.protocol.map=PLAINTEXT:SASL_SSL,CONTROLLER:SSL",
		"--set", "ssl.keystore.location="+f.keystore,
		"--set", "ssl.truststore.location="+f.truststore,
		"--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"--set", "super.users=User:broker",
		"--set", "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
		"--set", `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";`,
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
	tlsOpt := kgo.DialTLSConfig(f.clientTLS())
	auth := kgo.SASL(scram.Auth{User: "broker", Pass: "broker-secret"}.AsSha512Mechanism())
	cl := newClient(t, seeds[0], auth, tlsOpt, kgo.SeedBrokers(seeds...))
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	waitBrokersListed(t, seeds, 3, auth, tlsOpt)
	deadline := time.Now().Add(60 * time.Second)
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "sasl-replicated"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sasl-replicated", Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("acks=all write %d: %v", i, err)
		}
	}
	for {
		td, err := adm.ListTopics(ctx, "sasl-replicated")
		if err == nil && len(td["sasl-replicated"].Partitions[0].ISR) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the followers never joined the ISR over SASL: %v %v", td, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if recs := consumeAll(t, seeds[0], "sasl-replicated", 20, auth, tlsOpt, kgo.SeedBrokers(seeds...)); len(recs) != 20 {
		t.Fatalf("read %d records back, want 20", len(recs))
	}
	if out, err := runWeir(t, "app-secret\n", "user", "add", "app", "--password-stdin", "--brokers", strings.Join(seeds, ","),
		"--command-config", writeFile(t, filepath.Join(t.TempDir(), "broker.properties"), "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"+
			"sasl.username=broker\nsasl.password=broker-secret\nssl.ca.location="+f.truststore+"\n")); err != nil {
		t.Fatalf("weir user add app: %v\n%s", err, out)
	}
	app := newClient(t, seeds[0], kgo.SASL(scram.Auth{User: "app", Pass: "app-secret"}.AsSha512Mechanism()), tlsOpt,
		kgo.SeedBrokers(seeds...), kgo.RequestRetries(1), kgo.DisableIdempotentWrite())
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := app.ProduceSync(pctx, &kgo.Record{Topic: "sasl-replicated", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("a user without ACLs wrote to the cluster: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}
