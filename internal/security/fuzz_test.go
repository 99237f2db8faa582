package security

import (
	"testing"

	"github.com/weir-broker/weir/internal/metadata"
)

// FuzzSASLExchange feeds arbitrary client messages to every mechanism's
// exchange: each must answer or fail, never panic, and never name a
// principal for bytes that are not the right password's proof.
func FuzzSASLExchange(f *testing.F) {
	s := store{}
	c, err := NewCredential(ScramSHA256, "pw", MinIterations)
	if err != nil {
		f.Fatal(err)
	}
	s["alice"] = map[string]metadata.ScramCredential{ScramSHA256: c}
	a, err := NewAuthenticator([]string{ScramSHA256, ScramSHA512, Plain}, s.lookup)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), []byte("n,,n=alice,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add(uint8(1), []byte("n,,n=alice,r=abc"), []byte(""))
	f.Add(uint8(2), []byte("\x00alice\x00nope"), []byte(nil))
	f.Add(uint8(0), []byte("y,a=alice,n=alice,r="), []byte(",p="))
	f.Fuzz(func(t *testing.T, mech uint8, first, second []byte) {
		m := []string{ScramSHA256, ScramSHA512, Plain}[int(mech)%3]
		ex, ok := a.Begin(m, nil)
		if !ok {
			t.Fatal("not begun")
		}
		_, principal, err := ex.Step(first)
		if err != nil {
			return
		}
		if principal != "" {
			if m != Plain || principal != "User:alice" {
				t.Fatalf("%s authenticated %q from %q", m, principal, first)
			}
			return
		}
		_, principal, err = ex.Step(second)
		if err == nil && principal != "" {
			t.Fatalf("%s authenticated %q from fuzzed messages %q, %q", m, principal, first, second)
		}
	})
}
