package weir

import "testing"

// The profiler's command line never shows a secret setting's value,
// however the argument is spelled, and leaves the others as they are.
func TestCmdlineHidesSecretSettings(t *testing.T) {
	for arg, want := range map[string]string{
		`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="b" password="s3cret";`: "sasl.jaas.config=[hidden]",
		`--set=sasl.jaas.config=x password="s3cret"`: "--set=sasl.jaas.config=[hidden]",
		"ssl.keystore.password=s3cret":               "ssl.keystore.password=[hidden]",
		"--password=s3cret":                          "--password=[hidden]",
		"log.retention.ms=1000":                      "log.retention.ms=1000",
		"txn.before-markers=delay:12s#1":             "txn.before-markers=delay:12s#1",
		"--admin-listen":                             "--admin-listen",
		"127.0.0.1:9644":                             "127.0.0.1:9644",
	} {
		if got := redactArg(arg); got != want {
			t.Errorf("redactArg(%q) = %q, want %q", arg, got, want)
		}
	}
}
