package cli

import (
	"strings"
	"testing"
)

// Bad flags of the outbox commands fail before touching a database or a
// broker, with one line naming the problem.
func TestOutboxRejectsBadFlags(t *testing.T) {
	t.Setenv(outboxDSNEnv, "")
	const dsn = "postgres://postgres@127.0.0.1:1/none?sslmode=disable"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"outbox", "relay"}, "--dsn is required"},
		{[]string{"outbox", "migrate"}, "--dsn is required"},
		{[]string{"outbox", "relay", "--dsn", dsn, "--batch-size", "-5"}, "batch size -5 out of range"},
		{[]string{"outbox", "relay", "--dsn", dsn, "--poll-interval", "soon"}, `invalid argument "soon"`},
		{[]string{"outbox", "relay", "--dsn", dsn, "--progress-topic", "__mine"}, "reserved"},
		{[]string{"outbox", "relay", "--dsn", dsn, "--table", "drop table"}, "invalid table name"},
		{[]string{"outbox", "migrate", "--dsn", dsn, "--table", "a;b"}, "invalid table name"},
		{[]string{"outbox", "relay", "--dsn", "::not a dsn::"}, "database:"},
		{[]string{"outbox", "relay", "--dsn", dsn, "extra"}, "no arguments"},
		{[]string{"outbox", "relay", "--dsn", dsn, "--progress-topic", ""}, "--progress-topic: must not be empty"},
		{[]string{"outbox", "relay", "--dsn", dsn, "--transaction-timeout", "1s"}, "transaction timeout 1s is under 2s"},
		{[]string{"outbox", "relay", "--dsn", dsn, "--command-config", "/nonexistent/client.properties"}, "client.properties"},
		{[]string{"outbox", "skip", "--id", "3"}, "--dsn is required"},
		{[]string{"outbox", "skip", "--dsn", dsn, "--id", "3"}, "--relay-id: required"},
		{[]string{"outbox", "skip", "--dsn", dsn, "--relay-id", "r"}, "exactly one of --id"},
		{[]string{"outbox", "skip", "--dsn", dsn, "--relay-id", "r", "--id", "3", "--lsn", "0/1"}, "exactly one of --id"},
		{[]string{"outbox", "skip", "--dsn", dsn, "--relay-id", "r", "--lsn", "0/1"}, "only in cdc mode"},
		{[]string{"outbox", "skip", "--dsn", dsn, "--relay-id", "r", "--id", "3", "--mode", "x"}, `--mode "x"`},
	} {
		r := run(t, "127.0.0.1:1", "", tc.args...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("weir %s: err = %v, want %q", strings.Join(tc.args, " "), r.err, tc.want)
			continue
		}
		if strings.Contains(r.err.Error(), "\n") {
			t.Errorf("weir %s: error spans lines: %q", strings.Join(tc.args, " "), r.err)
		}
	}
}

// The relay's help says what an operator must know before running it:
// relay ids unique per table and database, what change data capture
// needs from PostgreSQL, and how to retire a slot.
func TestOutboxRelayHelpSaysWhatItNeeds(t *testing.T) {
	r := run(t, "127.0.0.1:1", "", "outbox", "relay", "--help")
	if r.err != nil {
		t.Fatal(r.err)
	}
	help := strings.Join(strings.Fields(r.stdout), " ") // as one line
	for _, want := range []string{
		"unique per outbox table and database",
		"REPLICATION",
		"must own the outbox table",
		"weir outbox drop-slot",
		"weir outbox skip",
		"--transaction-timeout",
		"--command-config",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help of weir outbox relay lacks %q:\n%s", want, r.stdout)
		}
	}
}
