package security

// SASL mechanisms served to clients, all checked against the SCRAM
// credentials in the metadata image (KIP-554): SCRAM-SHA-256 and
// SCRAM-SHA-512 (RFC 5802 and 7677, through github.com/xdg-go/scram), and
// PLAIN (RFC 4616), whose password is checked by deriving the user's
// stored key from it with the credential's salt and iteration count. One
// store serves every mechanism, so a user added with `weir user add` can
// use any of them.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net"
	"slices"
	"strings"

	"github.com/xdg-go/scram"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/server"
)

// Mechanism names.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	Plain       = "PLAIN"
)

// MinIterations and MaxIterations bound a SCRAM credential's iteration
// count, as Kafka does (4096 is RFC 7677's minimum for SHA-256).
const (
	MinIterations = 4096
	MaxIterations = 16384
)

// Lookup finds user's credential for a SCRAM mechanism.
type Lookup func(user, mechanism string) (metadata.ScramCredential, bool)

// Authenticator serves the SASL mechanisms of sasl.enabled.mechanisms.
type Authenticator struct {
	mechanisms []string
	lookup     Lookup
}

// NewAuthenticator serves mechanisms (each one of ScramSHA256,
// ScramSHA512 and Plain) against the credentials lookup finds.
func NewAuthenticator(mechanisms []string, lookup Lookup) (*Authenticator, error) {
	for _, m := range mechanisms {
		if m != ScramSHA256 && m != ScramSHA512 && m != Plain {
			return nil, fmt.Errorf("sasl.enabled.mechanisms: %s is not served (SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN are)", m)
		}
	}
	if len(mechanisms) == 0 {
		return nil, errors.New("sasl.enabled.mechanisms is empty: a SASL listener needs at least one mechanism")
	}
	return &Authenticator{mechanisms: slices.Clone(mechanisms), lookup: lookup}, nil
}

// Mechanisms implements server.SASL.
func (a *Authenticator) Mechanisms() []string { return a.mechanisms }

// Begin implements server.SASL.
func (a *Authenticator) Begin(mechanism string, _ net.Addr) (server.SASLExchange, bool) {
	if !slices.Contains(a.mechanisms, mechanism) {
		return nil, false
	}
	if mechanism == Plain {
		return &plainExchange{lookup: a.lookup}, true
	}
	ex := &scramExchange{mechanism: mechanism}
	srv, err := hashOf(mechanism).NewServer(func(user string) (scram.StoredCredentials, error) {
		c, ok := a.lookup(user, mechanism)
		if !ok {
			return scram.StoredCredentials{}, fmt.Errorf("no %s credential for user %q", mechanism, user)
		}
		ex.cred, ex.user = c, user
		return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: int(c.Iterations)}, StoredKey: c.StoredKey, ServerKey: c.ServerKey}, nil
	})
	if err != nil {
		return nil, false
	}
	ex.conv = srv.NewConversation()
	return ex, true
}

func hashOf(mechanism string) scram.HashGeneratorFcn {
	if mechanism == ScramSHA512 {
		return scram.SHA512
	}
	return scram.SHA256
}

func newHash(mechanism string) func() hash.Hash {
	if mechanism == ScramSHA512 {
		return sha512.New
	}
	return sha256.New
}

// scramExchange is one SCRAM conversation: client-first, server-first,
// client-final, server-final. The library parses the client's first
// message, looks the user up and writes the server's first message; the
// final step is checked here, as Kafka checks it: Kafka accepts a final
// nonce that ends with the server's (librdkafka sends the client's nonce
// before the whole server nonce, so its nonce holds the client's twice),
// where the library requires them equal.
type scramExchange struct {
	mechanism   string
	conv        *scram.ServerConversation
	user        string
	cred        metadata.ScramCredential
	clientFirst string // client-first-message
	serverFirst string // server-first-message
}

func (e *scramExchange) Step(in []byte) ([]byte, string, error) {
	if e.serverFirst != "" {
		return e.final(string(in))
	}
	out, err := e.conv.Step(string(in))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", server.ErrBadCredentials, err)
	}
	if z := e.conv.AuthzID(); z != "" && z != e.conv.Username() {
		// As Kafka: a client may not ask to act as another user.
		return nil, "", fmt.Errorf("%w: authorization id %q differs from the user", server.ErrBadCredentials, z)
	}
	e.clientFirst, e.serverFirst = string(in), out
	return []byte(out), "", nil
}

// final verifies the client-final-message (RFC 5802 section 3):
// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage) must hash to
// StoredKey, and the answer carries HMAC(ServerKey, AuthMessage).
func (e *scramExchange) final(msg string) ([]byte, string, error) {
	bad := func(why string) ([]byte, string, error) {
		return nil, "", fmt.Errorf("%w: %s", server.ErrBadCredentials, why)
	}
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return bad("client-final-message has no proof")
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return bad("client-final-message does not start with c= and r=")
	}
	gs2, ok := gs2Header(e.clientFirst)
	if !ok || attrs[0][2:] != base64.StdEncoding.EncodeToString([]byte(gs2)) {
		return bad("channel binding differs from the client's first message")
	}
	serverNonce := ""
	for _, a := range strings.Split(e.serverFirst, ",") {
		if strings.HasPrefix(a, "r=") {
			serverNonce = a[2:]
		}
	}
	if serverNonce == "" || !strings.HasSuffix(attrs[1][2:], serverNonce) {
		return bad("nonce does not end with the server's")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil {
		return bad("proof is not base64")
	}
	authMessage := e.clientFirst[len(gs2):] + "," + e.serverFirst + "," + withoutProof
	h := newHash(e.mechanism)
	clientSig := hmacOf(h, e.cred.StoredKey, authMessage)
	if len(proof) != len(clientSig) {
		return bad("proof has the wrong length")
	}
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ clientSig[i]
	}
	d := h()
	d.Write(clientKey)
	if !hmac.Equal(d.Sum(nil), e.cred.StoredKey) {
		return bad("proof does not match")
	}
	serverSig := hmacOf(h, e.cred.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), "User:" + e.user, nil
}

// gs2Header is the client-first-message's GS2 header: its first two
// comma-separated fields and their commas ("n,," with no authzid).
func gs2Header(clientFirst string) (string, bool) {
	i := strings.IndexByte(clientFirst, ',')
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(clientFirst[i+1:], ',')
	if j < 0 {
		return "", false
	}
	return clientFirst[:i+1+j+1], true
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// plainExchange is PLAIN's single message: authzid NUL authcid NUL
// password, where authzid, if given, must be the user itself.
type plainExchange struct{ lookup Lookup }

func (e *plainExchange) Step(in []byte) ([]byte, string, error) {
	parts := strings.Split(string(in), "\x00")
	if len(parts) != 3 || parts[1] == "" {
		return nil, "", errors.New("malformed PLAIN message: expected authzid NUL user NUL password")
	}
	authz, user, password := parts[0], parts[1], parts[2]
	if authz != "" && authz != user {
		return nil, "", errors.New("PLAIN authorization id differs from the user: acting as another user is not allowed")
	}
	if !CheckPassword(e.lookup, user, password) {
		return nil, "", fmt.Errorf("%w: PLAIN password for %q", server.ErrBadCredentials, user)
	}
	return nil, "User:" + user, nil
}

// CheckPassword reports whether password is user's, by any SCRAM
// credential the user holds.
func CheckPassword(lookup Lookup, user, password string) bool {
	for _, m := range []string{ScramSHA512, ScramSHA256} {
		c, ok := lookup(user, m)
		if !ok {
			continue
		}
		cl, err := hashOf(m).NewClient(user, password, "")
		if err != nil {
			return false
		}
		got, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(c.Salt), Iters: int(c.Iterations)})
		if err != nil {
			return false
		}
		return hmac.Equal(got.StoredKey, c.StoredKey)
	}
	return false
}

// NewCredential makes a credential for password with a fresh random salt.
func NewCredential(mechanism, password string, iterations int) (metadata.ScramCredential, error) {
	if err := checkCredential(mechanism, iterations); err != nil {
		return metadata.ScramCredential{}, err
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return metadata.ScramCredential{}, err
	}
	cl, err := hashOf(mechanism).NewClient("", password, "")
	if err != nil {
		return metadata.ScramCredential{}, fmt.Errorf("password: %w", err)
	}
	sc, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return metadata.ScramCredential{}, err
	}
	return metadata.ScramCredential{Salt: salt, Iterations: int32(iterations), StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

// CredentialFromSalted makes a credential from the salted password a
// client computed (AlterUserScramCredentials carries that, never the
// password): StoredKey = H(HMAC(salted, "Client Key")) and ServerKey =
// HMAC(salted, "Server Key"), as RFC 5802 defines them.
func CredentialFromSalted(mechanism string, salt, salted []byte, iterations int) (metadata.ScramCredential, error) {
	if err := checkCredential(mechanism, iterations); err != nil {
		return metadata.ScramCredential{}, err
	}
	if len(salt) == 0 || len(salted) == 0 {
		return metadata.ScramCredential{}, errors.New("the salt and the salted password must not be empty")
	}
	h := newHash(mechanism)
	clientKey := hmacOf(h, salted, "Client Key")
	d := h()
	d.Write(clientKey)
	return metadata.ScramCredential{Salt: slices.Clone(salt), Iterations: int32(iterations), StoredKey: d.Sum(nil), ServerKey: hmacOf(h, salted, "Server Key")}, nil
}

// ErrMechanism and ErrIterations say why a credential is refused.
var (
	ErrMechanism  = errors.New("unsupported SCRAM mechanism")
	ErrIterations = fmt.Errorf("iterations must be from %d to %d", MinIterations, MaxIterations)
)

func checkCredential(mechanism string, iterations int) error {
	if mechanism != ScramSHA256 && mechanism != ScramSHA512 {
		return fmt.Errorf("%w %q (SCRAM-SHA-256 or SCRAM-SHA-512)", ErrMechanism, mechanism)
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return fmt.Errorf("%w, not %d", ErrIterations, iterations)
	}
	return nil
}
