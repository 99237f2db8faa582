package console

import (
	"net/http/httptest"
	"testing"
)

// The console answers only to host names that are its own: IP addresses,
// localhost and the names it is configured with; a rebound name is not.
func TestConsoleAnswersOnlyToItsOwnHostNames(t *testing.T) {
	c := &Console{cfg: Config{Hosts: []string{"broker-1.example"}}}
	for host, want := range map[string]bool{
		"127.0.0.1:9644":         true,
		"[::1]:9644":             true,
		"10.0.0.7":               true,
		"localhost:9644":         true,
		"LOCALHOST.:9644":        true,
		"broker-1.example:9644":  true,
		"Broker-1.Example":       true,
		"rebind.example:9644":    false,
		"broker-1.example.evil":  false,
		"":                       false,
		"127.0.0.1.nip.io:9644":  false,
		"localhost.example:9644": false,
	} {
		if got := c.hostAllowed(host); got != want {
			t.Errorf("Host %q allowed: %v, want %v", host, got, want)
		}
	}
}

// A POST is the console's own only when its Origin, or its Referer when
// it has no Origin, names the host it was sent to.
func TestConsoleTakesOnlyFormsPostedFromItsOwnPage(t *testing.T) {
	for _, tc := range []struct {
		origin, referer string
		want            bool
	}{
		{"http://127.0.0.1:9644", "", true},
		{"", "http://127.0.0.1:9644/transactions", true},
		{"http://127.0.0.1:9644", "http://elsewhere.example/", true}, // Origin decides
		{"", "", false},
		{"null", "", false},
		{"http://elsewhere.example", "", false},
		{"", "http://elsewhere.example/trap.html", false},
		{"https://127.0.0.1:9644", "", false},
		{"http://127.0.0.1:9645", "", false},
		{"", "http://user@127.0.0.1:9644/", false},
	} {
		r := httptest.NewRequest("POST", "http://127.0.0.1:9644/transactions/abort", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.referer != "" {
			r.Header.Set("Referer", tc.referer)
		}
		if got := sameOrigin(r); got != tc.want {
			t.Errorf("Origin %q Referer %q: same origin %v, want %v", tc.origin, tc.referer, got, tc.want)
		}
	}
}
