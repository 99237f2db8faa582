package e2e

import (
	"strings"
	"testing"
)

// Every failure a new user is likely to meet in the first minutes prints
// one line that says the error code once and the broker's message once.
// runWeir checks each failed command's error; this test provokes them.
func TestCLIErrorsAreOneLineWithoutRepeatedText(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	brokers := "--brokers=" + p.addr
	if _, err := runWeir(t, "", "topic", "create", "orders", brokers); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"topic", "create", "orders"}, `TOPIC_ALREADY_EXISTS: topic "orders" already exists`},
		{[]string{"topic", "create", "bad name!"}, "INVALID_TOPIC_EXCEPTION"},
		{[]string{"topic", "create", "wide", "--replication-factor", "3"}, "INVALID_REPLICATION_FACTOR"},
		{[]string{"topic", "delete", "missing"}, "UNKNOWN_TOPIC_OR_PARTITION"},
		{[]string{"topic", "describe", "missing"}, "missing"},
		{[]string{"group", "describe", "nobody"}, "GROUP_ID_NOT_FOUND"},
		{[]string{"produce", "orders", "--acks", "2"}, "acks"},
		{[]string{"produce", "orders", "--no-such-flag"}, "no-such-flag"},
	} {
		_, err := runWeir(t, "x\n", append(tc.args, brokers)...)
		ce, ok := err.(*cliError)
		if !ok {
			t.Errorf("weir %s: %v, want a failed command", strings.Join(tc.args, " "), err)
			continue
		}
		if !strings.Contains(ce.stderr, tc.want) {
			t.Errorf("weir %s: %q does not say %q", strings.Join(tc.args, " "), ce.stderr, tc.want)
		}
	}
}

// The check runWeir applies catches what it is for: the error Weir used to
// print for an existing topic, and an error spread over lines.
func TestRepeatedTextFindsACodeOrWordsSaidTwice(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`weir: create topic "orders": TOPIC_ALREADY_EXISTS: Topic with this name already exists. (TOPIC_ALREADY_EXISTS: topic "orders" already exists)`, "TOPIC_ALREADY_EXISTS"},
		{`weir: produce to t: the topic does not exist; the topic does not exist`, "the topic does not"},
		{`weir: create topic "orders": TOPIC_ALREADY_EXISTS: topic "orders" already exists`, ""},
	} {
		if got := repeatedText(tc.line); got != tc.want {
			t.Errorf("repeatedText(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}
