package outbox_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The relay's flags are checked before anything connects: a value out of
// the range the help states is an error naming the flag, not a silent
// default.
func TestCLIRelayRejectsBadFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := []string{"outbox", "relay", "--dsn", "postgres://nobody@127.0.0.1:1/none", "--brokers", "127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--batch-size", "0"}, "--batch-size"},
		{[]string{"--batch-size", "-3"}, "--batch-size"},
		{[]string{"--batch-size", "10001"}, "--batch-size"},
		{[]string{"--poll-interval", "0s"}, "--poll-interval"},
		{[]string{"--poll-interval", "-1s"}, "--poll-interval"},
		{[]string{"--relay-id", ""}, "--relay-id"},
		{[]string{"--table", "a;b"}, "table"},
	} {
		out, err := weirCLI(ctx, append(append([]string(nil), base...), tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v (output %q), want an error naming %s", tc.args, err, out, tc.want)
		}
	}
}
