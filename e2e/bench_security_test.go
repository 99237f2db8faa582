package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-broker/weir/internal/bench"
	"github.com/weir-broker/weir/internal/testsvc"
)

// What TLS and SASL cost the clients of one broker: the same workload as
// `weir bench produce` and `weir bench consume` (one franz-go client,
// idempotent acks=all, 100-byte records, 6 partitions) on the broker's
// PLAINTEXT listener and on its SASL_SSL one (SCRAM-SHA-512, TLS 1.3),
// one after the other. scripts/bench-security.sh runs it in alternating
// order and prints the ratios BENCHMARKS.md reports. Not run by the test
// suite.
func BenchmarkListenerSecurity(b *testing.B) {
	dir := b.TempDir()
	ca, err := testsvc.NewCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	ks, _, err := ca.Issue(pkix.Name{CommonName: "broker"}, "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	keystore := filepath.Join(dir, "keystore.pem")
	if err := os.WriteFile(keystore, ks, 0o600); err != nil {
		b.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if out, err := runWeir(b, "bench-pw\n", "user", "add", "bench", "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", data); err != nil {
		b.Fatalf("weir user add: %v\n%s", err, out)
	}
	p := startProc(b, "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0", data, "--set", "ssl.keystore.location="+keystore)
	secure := p.listener(b, "SASL_SSL")
	secOpts := []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "bench", Pass: "bench-pw"}.AsSha512Mechanism()),
	}
	order := []string{"plaintext", "sasl_ssl"}
	if os.Getenv("WEIR_BENCH_ORDER") == "reverse" {
		order = []string{"sasl_ssl", "plaintext"}
	}
	for _, name := range order {
		addr, opts := p.addr, []kgo.Opt(nil)
		if name == "sasl_ssl" {
			addr, opts = secure, secOpts
		}
		b.Run(name, func(b *testing.B) {
			topic := fmt.Sprintf("bench-%s-%d", name, b.N)
			ctx := context.Background()
			pr, err := bench.Produce(ctx, []string{addr}, bench.ProduceOptions{Topic: topic, Partitions: 6, Records: b.N, RecordSize: 100, ClientOpts: opts})
			if err != nil {
				b.Fatal(err)
			}
			cr, err := bench.Consume(ctx, []string{addr}, bench.ConsumeOptions{Topic: topic, Records: b.N, ClientOpts: opts})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(pr.RecordsPerSec(), "produce-records/s")
			b.ReportMetric(cr.RecordsPerSec(), "consume-records/s")
		})
	}
}
