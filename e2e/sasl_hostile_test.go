package e2e

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/xdg-go/scram"
)

// saslStep sends one SaslAuthenticate carrying msg and returns the answer.
func saslStep(c *rawConn, msg []byte) *kmsg.SASLAuthenticateResponse {
	c.t.Helper()
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version, auth.SASLAuthBytes = 1, msg
	id := c.send(auth)
	ar := kmsg.NewPtrSASLAuthenticateResponse()
	ar.Version = 1
	c.recv(ar, id)
	return ar
}

// saslHandshake sends SaslHandshake v1 for mechanism and fails t unless
// it is accepted.
func saslHandshake(c *rawConn, mechanism string) {
	c.t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, mechanism
	id := c.send(hs)
	hsr := kmsg.NewPtrSASLHandshakeResponse()
	hsr.Version = 1
	c.recv(hsr, id)
	if hsr.ErrorCode != 0 {
		c.t.Fatalf("%s handshake: code %d", mechanism, hsr.ErrorCode)
	}
}

// A SCRAM client-first-message may name an authorization id (the a= of
// its GS2 header). Kafka refuses one that differs from the user
// ("Client requested an authorization id that is different from
// username"), since the principal is always the user: accepting it lets
// a client believe it acts as someone else. Alice, with her own
// password, asks to be admin; the exchange must fail.
func TestSCRAMRefusesAnAuthorizationIDOtherThanTheUser(t *testing.T) {
	addr := startSASLBroker(t, nil)
	client, err := scram.SHA256.NewClient("alice", "pw", "admin")
	if err != nil {
		t.Fatal(err)
	}
	conv := client.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first, "n,a=admin,") {
		t.Fatalf("client-first-message %q has no authorization id", first)
	}
	c := dialRaw(t, addr)
	saslHandshake(c, "SCRAM-SHA-256")
	ar := saslStep(c, []byte(first))
	if ar.ErrorCode != 0 {
		return // refused at the first message, as Kafka refuses it
	}
	final, err := conv.Step(string(ar.SASLAuthBytes))
	if err != nil {
		t.Fatal(err)
	}
	ar = saslStep(c, []byte(final))
	if ar.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("SCRAM as alice with authorization id admin: code %d, want SASL_AUTHENTICATION_FAILED (Kafka refuses an authzid other than the user)", ar.ErrorCode)
	}
}

// A malformed sasl.jaas.config is refused without telling any of the
// password: the error names the problem, never the secret's characters.
// (The same parser reads the broker's own sasl.jaas.config, whose error
// ends up in its log.) Here the password is not quoted, a common slip.
func TestMalformedJAASConfigErrorTellsNoneOfThePassword(t *testing.T) {
	const password = "Zq9xKw7pLm2v"
	props := writeFile(t, t.TempDir()+"/client.properties", "security.protocol=SASL_PLAINTEXT\n"+
		"sasl.mechanism=SCRAM-SHA-256\n"+
		"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password="+password+";\n")
	out, err := runWeir(t, "", "user", "list", "--brokers", "127.0.0.1:1", "--command-config", props)
	var msg string
	if ce, ok := err.(*cliError); ok {
		msg = ce.stderr
	}
	if err == nil {
		t.Fatalf("a malformed sasl.jaas.config was accepted:\n%s", out)
	}
	if strings.Contains(msg, password[:3]) {
		t.Fatalf("the error shows the start of the password %q: %s", password[:3], msg)
	}
}

// Before it has authenticated, a client is a stranger, and a stranger's
// frames are bounded far below socket.request.max.bytes (100 MiB): Kafka
// refuses any frame above sasl.server.max.receive.size (512 KiB) from a
// client still authenticating and closes the connection, because every
// stranger may otherwise make the broker hold a buffer of the frame size
// it claims until the authentication timeout ends. Here a client that has
// only done SaslHandshake sends a SaslAuthenticate of 2 MiB: the broker
// must close the connection instead of reading it and answering.
func TestUnauthenticatedClientCannotSendFramesAboveSASLReceiveLimit(t *testing.T) {
	addr := startSASLBroker(t, nil)
	c := dialRaw(t, addr)
	saslHandshake(c, "SCRAM-SHA-256")
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version, auth.SASLAuthBytes = 1, []byte(strings.Repeat("x", 2<<20))
	c.id++
	b := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, auth, c.id)
	go c.c.Write(b) // may fail half-way once the broker closes
	if frame, err := c.readFrame(); err == nil {
		t.Fatalf("the broker read a %d-byte frame from an unauthenticated client and answered it (%d bytes) instead of closing the connection", len(b), len(frame))
	}
}

// Failed authentications are rate-limited per source address (issue 16,
// "hostile input"), not only per connection: otherwise a guesser opens
// as many connections as max.connections allows and each one's
// connection.failed.authentication.delay.ms runs in parallel. Twenty
// connections from 127.0.0.1 each send one wrong SCRAM password at once;
// with a 500 ms delay, their answers must be spread over at least the
// time of several delays, not all come back after one.
func TestFailedAuthenticationsAreRateLimitedPerSourceAddress(t *testing.T) {
	const delay = 500 * time.Millisecond
	addr := startSASLBroker(t, map[string]string{"connection.failed.authentication.delay.ms": "500"})
	const n = 20
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = metadataErr(t, addr, kgo.SASL(fscram.Auth{User: "alice", Pass: "guess"}.AsSha256Mechanism()))
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d wrong passwords from one address answered in %v", n, elapsed)
	if elapsed < 4*delay {
		t.Fatalf("%d failed authentications from one source address were all answered within %v (%.0f guesses/s): only the per-connection delay of %v applies, no per-source limit", n, elapsed.Round(time.Millisecond), n/elapsed.Seconds(), delay)
	}
}
