package outbox_test

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-broker/weir/internal/security"
	"github.com/weir-broker/weir/internal/testsvc"
	"github.com/weir-broker/weir/pkg/outbox"
	"github.com/weir-broker/weir/pkg/weir"
)

// `weir outbox relay --command-config` publishes to a broker that speaks
// only SASL_SSL and enforces ACLs, as a user holding only the rights the
// relay needs: WRITE on its output topic, its progress topic (which it
// creates) and WRITE on its transactional id; every event is read back
// once by a read_committed consumer.
func TestCLIRelaysToABrokerWithSASLAndACLs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	for user, pw := range map[string]string{"admin": "admin-pw", "relay": "relay-pw"} {
		cred, err := security.NewCredential(security.ScramSHA512, pw, security.MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		if err := security.AddBootstrapCredential(dir, user, security.ScramSHA512, cred); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := testsvc.NewCA("outbox test CA")
	if err != nil {
		t.Fatal(err)
	}
	keystore, _, err := ca.Issue(pkix.Name{CommonName: "broker"}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	keystorePath, caPath := filepath.Join(dir, "keystore.pem"), filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(keystorePath, keystore, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caPath, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := weir.Start(ctx, weir.Config{DataDir: dir, Settings: map[string]string{
		"listeners":             "SASL_SSL://127.0.0.1:0",
		"ssl.keystore.location": keystorePath,
		"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":           "User:admin",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	admin := kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism())
	tlsOpt := kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), admin, tlsOpt, kgo.ConsumeTopics("payments"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "payments"); err != nil {
		t.Fatal(err)
	}
	for _, acls := range []*kadm.ACLBuilder{
		kadm.NewACLs().Allow("User:relay").ResourcePatternType(kadm.ACLPatternLiteral).Topics("payments").Operations(kadm.OpWrite),
		kadm.NewACLs().Allow("User:relay").ResourcePatternType(kadm.ACLPatternLiteral).Topics(outbox.DefaultProgressTopic).Operations(kadm.OpAll),
		kadm.NewACLs().Allow("User:relay").ResourcePatternType(kadm.ACLPatternLiteral).TransactionalIDs(outbox.TransactionalIDPrefix + "secured").Operations(kadm.OpWrite),
	} {
		res, err := adm.CreateACLs(ctx, acls)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("CreateACLs: %v", r.Err)
			}
		}
	}
	props := filepath.Join(dir, "relay.properties")
	if err := os.WriteFile(props, []byte("security.protocol=SASL_SSL\nssl.truststore.location="+caPath+"\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=relay\nsasl.password=relay-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	dsn, err := outbox.SharedPostgres().NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := weirCLI(ctx, "outbox", "migrate", "--dsn", dsn); err != nil {
		t.Fatalf("migrate: %q, %v", out, err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const events = 12
	for i := range events {
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := outbox.Write(ctx, tx, outbox.Event{Topic: "payments", Key: []byte{byte(i % 3)}, Payload: []byte("p")})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = weirCLI(rctx, "outbox", "relay", "--dsn", dsn, "--brokers", b.Addr(), "--command-config", props,
			"--relay-id", "secured", "--batch-size", "5", "--poll-interval", "10ms")
		done <- err
	}()
	seen := map[string]int{}
	for n := 0; n < events; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			stop()
			<-done
			t.Fatalf("read %d of %d events; relay output:\n%s", n, events, out)
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "weir-event-uuid" {
					seen[string(h.Value)]++
				}
			}
			n++
		})
	}
	stop()
	if err := <-done; err != nil && !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("relay: %v\n%s", err, out)
	}
	if len(seen) != events {
		t.Fatalf("%d distinct events read, want %d", len(seen), events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("event %s read %d times", id, n)
		}
	}
}
