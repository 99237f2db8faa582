package security

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/server"
)

type store map[string]map[string]metadata.ScramCredential

func (s store) lookup(user, mech string) (metadata.ScramCredential, bool) {
	c, ok := s[user][mech]
	return c, ok
}

func (s store) add(t *testing.T, user, mech, password string) {
	t.Helper()
	c, err := NewCredential(mech, password, MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	if s[user] == nil {
		s[user] = map[string]metadata.ScramCredential{}
	}
	s[user][mech] = c
}

// converse runs a whole SCRAM conversation between a real client and
// the authenticator, returning the principal or the server's error.
func converse(t *testing.T, a *Authenticator, mech, user, password string) (string, error) {
	t.Helper()
	cl, err := hashOf(mech).NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := cl.NewConversation()
	ex, ok := a.Begin(mech, nil)
	if !ok {
		t.Fatalf("%s not begun", mech)
	}
	msg, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		out, principal, err := ex.Step([]byte(msg))
		if err != nil || principal != "" {
			if err == nil {
				if _, cerr := conv.Step(string(out)); cerr != nil {
					t.Fatalf("client refused the server's final message: %v", cerr)
				}
			}
			return principal, err
		}
		if msg, err = conv.Step(string(out)); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the conversation did not end")
	return "", nil
}

func TestSCRAMAuthenticatesTheRightPasswordOnlyAndNamesTheUser(t *testing.T) {
	s := store{}
	s.add(t, "alice", ScramSHA256, "secret-256")
	s.add(t, "alice", ScramSHA512, "secret-512")
	a, err := NewAuthenticator([]string{ScramSHA256, ScramSHA512}, s.lookup)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mech, user, password string
		ok                   bool
	}{
		{ScramSHA256, "alice", "secret-256", true},
		{ScramSHA512, "alice", "secret-512", true},
		{ScramSHA256, "alice", "secret-512", false},
		{ScramSHA512, "alice", "wrong", false},
		{ScramSHA256, "bob", "secret-256", false},
	} {
		principal, err := converse(t, a, tc.mech, tc.user, tc.password)
		if tc.ok && (err != nil || principal != "User:alice") {
			t.Errorf("%s %s/%s: principal %q, err %v; want User:alice", tc.mech, tc.user, tc.password, principal, err)
		}
		if !tc.ok && (err == nil || !errors.Is(err, server.ErrBadCredentials)) {
			t.Errorf("%s %s/%s: principal %q, err %v; want invalid credentials", tc.mech, tc.user, tc.password, principal, err)
		}
	}
	if _, ok := a.Begin(Plain, nil); ok {
		t.Fatal("PLAIN begun although not enabled")
	}
}

func TestPLAINChecksThePasswordAgainstTheSCRAMCredential(t *testing.T) {
	s := store{}
	s.add(t, "carol", ScramSHA512, "pw")
	a, err := NewAuthenticator([]string{Plain}, s.lookup)
	if err != nil {
		t.Fatal(err)
	}
	step := func(msg string) (string, error) {
		ex, _ := a.Begin(Plain, nil)
		_, p, err := ex.Step([]byte(msg))
		return p, err
	}
	if p, err := step("\x00carol\x00pw"); err != nil || p != "User:carol" {
		t.Fatalf("right password: %q %v", p, err)
	}
	if p, err := step("carol\x00carol\x00pw"); err != nil || p != "User:carol" {
		t.Fatalf("authzid equal to the user: %q %v", p, err)
	}
	for _, bad := range []string{"\x00carol\x00nope", "\x00dave\x00pw", "admin\x00carol\x00pw", "carol", "\x00\x00pw", ""} {
		if p, err := step(bad); err == nil {
			t.Errorf("PLAIN %q authenticated as %q", bad, p)
		}
	}
}

// A credential made from the salted password a client sends
// (AlterUserScramCredentials) equals the one made from the password.
func TestCredentialFromTheSaltedPasswordMatchesTheOneFromThePassword(t *testing.T) {
	for _, mech := range []string{ScramSHA256, ScramSHA512} {
		want, err := NewCredential(mech, "hunter2", 4096)
		if err != nil {
			t.Fatal(err)
		}
		salted, err := pbkdf2.Key(newHash(mech), "hunter2", want.Salt, 4096, newHash(mech)().Size())
		if err != nil {
			t.Fatal(err)
		}
		got, err := CredentialFromSalted(mech, want.Salt, salted, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.StoredKey, want.StoredKey) || !slices.Equal(got.ServerKey, want.ServerKey) {
			t.Fatalf("%s: keys from the salted password differ", mech)
		}
	}
	if _, err := CredentialFromSalted(ScramSHA256, []byte("s"), []byte("x"), 100); !errors.Is(err, ErrIterations) {
		t.Fatalf("100 iterations: %v", err)
	}
	if _, err := CredentialFromSalted("SCRAM-SHA-1", []byte("s"), []byte("x"), 4096); !errors.Is(err, ErrMechanism) {
		t.Fatalf("SHA-1: %v", err)
	}
}

func TestJAASCredentialsAreReadFromKafkasLoginModuleEntry(t *testing.T) {
	u, p, err := JAASCredentials(`org.apache.kafka.common.security.scram.ScramLoginModule required username="broker-1" password="s3cr\"et";`)
	if err != nil || u != "broker-1" || p != `s3cr"et` {
		t.Fatalf("got %q %q %v", u, p, err)
	}
	for _, bad := range []string{"", "Module", `M required username="a";`, `M required username="a" password="b`, `M required username=a password="b";`} {
		if _, _, err := JAASCredentials(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// librdkafka's client-final-message carries its own nonce followed by
// the whole server nonce (which starts with its own again); Kafka accepts
// any final nonce that ends with the server's, and so must Weir, while a
// wrong proof or a nonce that does not end with the server's is refused.
func TestSCRAMFinalNonceEndingWithTheServersIsAcceptedAsKafkaDoes(t *testing.T) {
	s := store{}
	s.add(t, "app", ScramSHA256, "pw")
	a, err := NewAuthenticator([]string{ScramSHA256}, s.lookup)
	if err != nil {
		t.Fatal(err)
	}
	cred := s["app"][ScramSHA256]
	final := func(nonceOf func(cnonce, snonce string) string, tamper bool) error {
		ex, _ := a.Begin(ScramSHA256, nil)
		cnonce := "clientnonce0123456789"
		first := "n,,n=app,r=" + cnonce
		out, _, err := ex.Step([]byte(first))
		if err != nil {
			t.Fatal(err)
		}
		serverFirst := string(out)
		snonce := strings.TrimPrefix(strings.Split(serverFirst, ",")[0], "r=")
		withoutProof := "c=biws,r=" + nonceOf(cnonce, snonce)
		salted, err := pbkdf2.Key(sha256.New, "pw", cred.Salt, int(cred.Iterations), sha256.Size)
		if err != nil {
			t.Fatal(err)
		}
		clientKey := hmacOf(sha256.New, salted, "Client Key")
		sig := hmacOf(sha256.New, cred.StoredKey, first[3:]+","+serverFirst+","+withoutProof)
		proof := make([]byte, len(sig))
		for i := range sig {
			proof[i] = clientKey[i] ^ sig[i]
		}
		if tamper {
			proof[0] ^= 1
		}
		_, principal, err := ex.Step([]byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)))
		if err == nil && principal != "User:app" {
			t.Fatalf("principal %q", principal)
		}
		return err
	}
	exact := func(_, snonce string) string { return snonce }
	twice := func(cnonce, snonce string) string { return cnonce + snonce }
	if err := final(exact, false); err != nil {
		t.Fatalf("RFC 5802 nonce: %v", err)
	}
	if err := final(twice, false); err != nil {
		t.Fatalf("librdkafka's nonce: %v", err)
	}
	if err := final(exact, true); err == nil {
		t.Fatal("a tampered proof was accepted")
	}
	if err := final(func(cnonce, snonce string) string { return snonce[:len(snonce)-1] }, false); err == nil {
		t.Fatal("a nonce short of the server's was accepted")
	}
}
