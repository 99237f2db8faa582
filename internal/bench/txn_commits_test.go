package bench

import (
	"context"
	"testing"
)

// BenchmarkWeirConcurrentCommits64 commits b.N small transactions from 64
// transactional producers on distinct ids against one durable Weir
// broker: what the coordinator's overlap of unrelated commits is worth.
func BenchmarkWeirConcurrentCommits64(b *testing.B) {
	brokers := startWeir(b)
	b.ResetTimer()
	res, err := ConcurrentCommits(context.Background(), brokers, CommitsOptions{Topic: "commits", Producers: 64, Commits: b.N})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.CommitsPerSecond(), "commits/s")
	if res.Commits > 0 {
		b.ReportMetric(float64(res.CommitWait.Microseconds())/1e3/float64(res.Commits), "endtxn-ms/commit")
	}
}

func TestConcurrentCommitsCommitsEveryTransaction(t *testing.T) {
	brokers := startWeir(t)
	res, err := ConcurrentCommits(context.Background(), brokers, CommitsOptions{Topic: "commits", Producers: 8, Commits: 40})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commits != 40 {
		t.Fatalf("committed %d transactions, want 40", res.Commits)
	}
	got, err := Consume(context.Background(), brokers, ConsumeOptions{Topic: "commits", Records: 40, ReadCommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Records != 40 {
		t.Fatalf("read_committed read %d records, want 40", got.Records)
	}
}
