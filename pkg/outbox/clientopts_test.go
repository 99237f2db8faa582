package outbox

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// RelayConfig.ClientOpts is for connection settings (TLS, SASL). The
// options the exactly-once argument rests on (the transactional id,
// acks=all, progress records in partition 0, a read_committed progress
// read from partition 0) must hold whatever ClientOpts says.
func TestClientOptsCannotOverrideWhatExactlyOnceNeeds(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("r1", 5)
	cfg.ClientOpts = []kgo.Opt{
		kgo.TransactionalID("someone-else"),
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.TransactionTimeout(time.Hour),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumerGroup("g"),
	}
	r, err := NewRelay(e.pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(r.clientOpts()...)
	if err != nil {
		t.Fatalf("relay client: %v", err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.TransactionalID); got != TransactionalIDPrefix+"r1" {
		t.Errorf("transactional id %v, want %s", got, TransactionalIDPrefix+"r1")
	}
	if got := cl.OptValue(kgo.TransactionTimeout); got != DefaultTxnTimeout {
		t.Errorf("transaction timeout %v, want %v", got, DefaultTxnTimeout)
	}
	if got, ok := cl.OptValue(kgo.RecordPartitioner).(partitioner); !ok {
		t.Errorf("partitioner %T, want the relay's", got)
	}
	if got := cl.OptValue(kgo.RequiredAcks); got != kgo.AllISRAcks() {
		t.Errorf("acks %v, want all", got)
	}

	rd, err := kgo.NewClient(progressReaderOpts(r.cfg)...)
	if err != nil {
		t.Fatalf("progress reader: %v", err)
	}
	defer rd.Close()
	if got := rd.OptValue(kgo.FetchIsolationLevel); got != int8(1) {
		t.Errorf("progress reader isolation level %v, want read_committed (1)", got)
	}
	if got := rd.OptValue(kgo.ConsumeTopics); len(got.([]string)) != 0 {
		t.Errorf("progress reader consumes topics %v besides its partition", got)
	}
	if got := rd.OptValue(kgo.ConsumerGroup); got != "" {
		t.Errorf("progress reader joins group %v", got)
	}
}
