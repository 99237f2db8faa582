package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Enforcement fails closed: a served API without a rule would be refused
// by closing the connection, so every served API must have one.
func TestEveryServedAPIHasAnAuthorizationRule(t *testing.T) {
	for _, s := range served {
		if _, ok := rules[s.key]; !ok {
			t.Errorf("%s (key %d) is served but has no authorization rule", kmsg.NameForKey(s.key), s.key)
		}
	}
}
