package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// Every client command takes its security settings as flags too
// (--command-property KEY=VALUE, Kafka's name from KIP-1147), alone or
// over a --command-config file, flags winning: a user can reach a
// SASL_SSL broker without writing a file, and fix one setting of a shared
// file for one command.
func TestClientSecuritySettingsAsFlagsOverTheCommandConfigFile(t *testing.T) {
	f := newTLSFiles(t, t.TempDir())
	addr, _, _ := aclBrokerWith(t, map[string]string{"listeners": "SASL_SSL://127.0.0.1:0", "ssl.keystore.location": f.keystore})
	asAdmin := []string{"--brokers", addr,
		"--command-property", "security.protocol=SASL_SSL", "--command-property", "ssl.truststore.location=" + f.truststore,
		"--command-property", "sasl.mechanism=SCRAM-SHA-512", "--command-property", "sasl.username=admin", "--command-property", "sasl.password=admin-pw"}
	if out, err := runWeir(t, "", append([]string{"topic", "create", "flagged", "--partitions", "1"}, asAdmin...)...); err != nil {
		t.Fatalf("weir topic create with security flags only: %v\n%s", err, out)
	}

	wrongPassword := writeFile(t, filepath.Join(t.TempDir(), "admin.properties"), "security.protocol=SASL_SSL\nssl.truststore.location="+f.truststore+"\n"+
		"sasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password=stale\n")
	if out, err := runWeir(t, "v\n", "produce", "flagged", "--brokers", addr, "--command-config", wrongPassword,
		"--command-property", "sasl.password=admin-pw"); err != nil {
		t.Fatalf("weir produce with the file's password replaced by a flag: %v\n%s", err, out)
	}
	if out, err := runWeir(t, "", "consume", "flagged", "--from", "start", "-n", "1", "--brokers", addr, "--command-config", wrongPassword); err == nil {
		t.Fatalf("weir consume with the file's wrong password was served:\n%s", out)
	}
	if out, err := runWeir(t, "", append([]string{"consume", "flagged", "--from", "start", "-n", "1"}, asAdmin...)...); err != nil || out != "v\n" {
		t.Fatalf("weir consume with security flags only: %q %v", out, err)
	}

	_, err := runWeir(t, "", "topic", "list", "--brokers", addr, "--command-property", "security.protocol")
	if ce, ok := err.(*cliError); !ok || !strings.Contains(ce.stderr, "--command-property") || !strings.Contains(ce.stderr, "KEY=VALUE") {
		t.Fatalf("a --command-property without a value: %v, want an error naming the flag and its form", err)
	}
}
