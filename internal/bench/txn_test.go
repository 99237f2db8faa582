package bench

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// benchCommitEvery is how often the transactional benchmark commits, and
// its idempotent baseline flushes: a stream processor's usual commit
// interval (Kafka Streams commits every 100 ms under exactly-once).
const benchCommitEvery = 100 * time.Millisecond

// The pair below answers what transactions cost: both produce b.N records
// with the same idempotent client and settings and wait for every record
// every 100 ms; only the first wraps each 100 ms in a transaction.
// scripts/bench-txn.sh runs them interleaved and prints the ratio.

func BenchmarkWeirProduceTransactional(b *testing.B) {
	runEveryBench(b, startWeir(b), ProduceTransactional)
}

func BenchmarkWeirProduceIdempotentFlushing(b *testing.B) {
	runEveryBench(b, startWeir(b), ProduceFlushing)
}

// runEveryBench runs produce (ProduceTransactional or ProduceFlushing)
// with b.N records and benchCommitEvery, and reports, besides
// reportProduce's figures, the commits (or flushes) made, the average time
// each spent flushing and in EndTransaction, and the AddPartitionsToTxn
// requests per commit and their time: kgo sends one before the first
// produce request to a partition new to the transaction and sends nothing
// else to that broker until it is answered.
func runEveryBench(b *testing.B, brokers []string, produce func(context.Context, []string, ProduceOptions, time.Duration) (ProduceResult, error)) {
	b.Helper()
	var adds addPartitionsTimer
	opts := ProduceOptions{Topic: benchTopic, Records: b.N, ClientOpts: []kgo.Opt{kgo.WithHooks(&adds)}}
	b.ResetTimer()
	res, err := produce(context.Background(), brokers, opts, benchCommitEvery)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	reportProduce(b, res)
	b.ReportMetric(float64(res.Cuts), "commits")
	if res.Cuts > 0 {
		perCommit := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(res.Cuts) }
		b.ReportMetric(perCommit(res.FlushWait), "flush-ms/commit")
		b.ReportMetric(perCommit(res.EndTxnWait), "endtxn-ms/commit")
		n, total := adds.sum()
		b.ReportMetric(float64(n)/float64(res.Cuts), "addparts/commit")
		b.ReportMetric(perCommit(total), "addparts-ms/commit")
	}
}

// addPartitionsTimer is a kgo hook that counts AddPartitionsToTxn requests
// and adds up their round trips.
type addPartitionsTimer struct {
	mu    sync.Mutex
	n     int
	total time.Duration
}

func (t *addPartitionsTimer) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if key != kmsg.AddPartitionsToTxn.Int16() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	t.total += e.DurationE2E()
}

func (t *addPartitionsTimer) sum() (int, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n, t.total
}

func TestProduceTransactionalCommitsEveryIntervalAndAllRecordsAreCommitted(t *testing.T) {
	brokers := startWeir(t)
	ctx := context.Background()
	const records = 20_000
	// A tiny buffer keeps the producer from handing all records to the
	// client before the first interval is up.
	opts := ProduceOptions{Topic: "txn", Records: records, MaxBufferedRecords: 100}
	res, err := ProduceTransactional(ctx, brokers, opts, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != records {
		t.Fatalf("acknowledged %d records, want %d", res.Records, records)
	}
	if res.Cuts < 2 {
		t.Fatalf("committed %d transactions in %v at one per 5ms, want at least 2", res.Cuts, res.Elapsed)
	}
	if res.EndTxnWait <= 0 {
		t.Fatalf("EndTxnWait = %v, want the time spent committing", res.EndTxnWait)
	}
	// Every record is visible to a read_committed reader: the last,
	// partial transaction was committed too.
	got, err := Consume(ctx, brokers, ConsumeOptions{Topic: "txn", Records: records, ReadCommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Records != records {
		t.Fatalf("read_committed read %d records, want %d", got.Records, records)
	}
}

func TestProduceFlushingFlushesWithoutTransactions(t *testing.T) {
	brokers := startWeir(t)
	opts := ProduceOptions{Topic: "flush", Records: 20_000, MaxBufferedRecords: 100}
	res, err := ProduceFlushing(context.Background(), brokers, opts, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 20_000 || res.Cuts < 2 || res.EndTxnWait != 0 {
		t.Fatalf("records %d, flushes %d, EndTxnWait %v: want 20000, at least 2, 0", res.Records, res.Cuts, res.EndTxnWait)
	}
}

func TestTransactionalWorkloadsRefuseNonIdempotentProducers(t *testing.T) {
	for _, opts := range []ProduceOptions{{DisableIdempotence: true}, {Acks: AcksLeader}} {
		for name, produce := range map[string]func(context.Context, []string, ProduceOptions, time.Duration) (ProduceResult, error){
			"ProduceTransactional": ProduceTransactional,
			"ProduceFlushing":      ProduceFlushing,
		} {
			if _, err := produce(context.Background(), []string{"127.0.0.1:1"}, opts, time.Second); !errors.Is(err, ErrTransactionsNeedIdempotence) {
				t.Errorf("%s(%+v) = %v, want ErrTransactionsNeedIdempotence", name, opts, err)
			}
		}
	}
}
