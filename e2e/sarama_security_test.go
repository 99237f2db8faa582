package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	"github.com/weir-broker/weir/pkg/weir"
)

// saramaSCRAM is sarama's SCRAM client, over xdg-go/scram as sarama's own
// examples build it.
type saramaSCRAM struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *saramaSCRAM) Begin(user, pass, authzID string) error {
	cl, err := s.hash.NewClient(user, pass, authzID)
	if err != nil {
		return err
	}
	s.conv = cl.NewConversation()
	return nil
}

func (s *saramaSCRAM) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *saramaSCRAM) Done() bool                            { return s.conv.Done() }

// A third client family, sarama, against a SASL_SSL broker enforcing
// ACLs: with SCRAM-SHA-512 over TLS it produces and consumes what its
// ACLs allow, is refused a topic they do not, and a wrong password is
// refused at the handshake.
func TestSaramaOverSASLSSLWithACLs(t *testing.T) {
	dir := t.TempDir()
	f := newTLSFiles(t, dir)
	data := filepath.Join(dir, "data")
	for user, pw := range map[string]string{"admin": "admin-pw", "app": "app-pw"} {
		if out, err := runWeir(t, pw+"\n", "user", "add", user, "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", data); err != nil {
			t.Fatalf("weir user add: %v\n%s", err, out)
		}
	}
	b, err := weir.Start(context.Background(), weir.Config{DataDir: data, Settings: map[string]string{
		"listeners":             "SASL_SSL://127.0.0.1:0",
		"ssl.keystore.location": f.keystore,
		"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":           "User:admin",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	addr := b.Addr()
	props := writeFile(t, filepath.Join(dir, "admin.properties"), "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"+
		"sasl.username=admin\nsasl.password=admin-pw\nssl.truststore.location="+f.truststore+"\n")
	for _, args := range [][]string{
		{"topic", "create", "allowed", "--partitions", "1"},
		{"topic", "create", "forbidden", "--partitions", "1"},
		{"acl", "add", "--allow-principal", "User:app", "--operation", "write", "--operation", "read", "--topic", "allowed"},
	} {
		if out, err := runWeir(t, "", append(args, "--brokers", addr, "--command-config", props)...); err != nil {
			t.Fatalf("weir %v: %v\n%s", args, err, out)
		}
	}
	config := func(pass string) *sarama.Config {
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V3_6_0_0
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = &tls.Config{RootCAs: f.ca.Pool(), MinVersion: tls.VersionTLS12}
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		cfg.Net.SASL.User, cfg.Net.SASL.Password = "app", pass
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{hash: scram.SHA512} }
		cfg.Producer.Return.Successes = true
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Retry.Max = 1
		return cfg
	}
	if _, err := sarama.NewClient([]string{addr}, config("wrong")); err == nil {
		t.Fatal("sarama with a wrong password was let in")
	}
	prod, err := sarama.NewSyncProducer([]string{addr}, config("app-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 5 {
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "allowed", Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
			t.Fatalf("sarama produce to a topic it may write: %v", err)
		}
	}
	if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "forbidden", Value: sarama.StringEncoder("x")}); err == nil {
		t.Fatal("sarama wrote to a topic its ACLs do not allow")
	}
	cons, err := sarama.NewConsumer([]string{addr}, config("app-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition("allowed", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range 5 {
		m := <-pc.Messages()
		if string(m.Value) != fmt.Sprint(i) {
			t.Fatalf("record %d: %q", i, m.Value)
		}
	}
}
