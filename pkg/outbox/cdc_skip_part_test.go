package outbox

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCDCTransactionSkippedByLSNReachesNoConsumer writes one source
// transaction larger than the batch size whose second part holds an
// event its topic refuses. The relay publishes the first part, fails on
// the second, and names the skip command, --lsn for the whole
// transaction. The package doc: skip --lsn skips a whole source
// transaction, and "the skipped event reaches no consumer; every other
// event is still published exactly once". After the skip by LSN, no
// event of that transaction may be visible to a read_committed consumer
// (or the skip must be refused, the transaction being already partly
// published).
func TestCDCTransactionSkippedByLSNReachesNoConsumer(t *testing.T) {
	e := newCDCEnv(t)
	e.tinyTopic("orders-tiny")
	cfg := e.config("sp", 2)
	e.cdcSetupWith(cfg)
	ctx := testCtx(t)
	var txnIDs []int64
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		for _, ev := range []Event{
			{Topic: e.topic, Payload: []byte("a")},
			{Topic: e.topic, Payload: []byte("b")},
			{Topic: "orders-tiny", Payload: incompressible(4096)},
			{Topic: e.topic, Payload: []byte("d")},
		} {
			id, err := Write(ctx, tx, ev)
			if err != nil {
				return err
			}
			txnIDs = append(txnIDs, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	after := e.placeOrdersInTxns(2, 1)

	var logs logBuffer
	cfg.Logger = logs.logger()
	cfg.TxnTimeout = refusalTxnTimeout
	_, stop := e.startCDCWith(cfg)
	lsnRE := regexp.MustCompile(`refused by Kafka.* id=` + strconv.FormatInt(txnIDs[2], 10) + ` .*commit_lsn=(\S+)`)
	lsn := logs.waitFor(t, lsnRE)[1]
	skipper, err := NewCDCRelay(e.dsn, e.config("sp", 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := skipper.SkipTransaction(context.Background(), lsn, "refused"); err != nil {
		t.Logf("skip by LSN refused: %v", err)
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	seen := idsOf(e.readTopic(kgo.ReadCommitted()))
	for seen[after[0]] == 0 || seen[after[1]] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("events %v after the skipped transaction not published in 30 s", after)
		}
		time.Sleep(100 * time.Millisecond)
		seen = idsOf(e.readTopic(kgo.ReadCommitted()))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var visible []int64
	for _, id := range txnIDs {
		if seen[id] > 0 {
			visible = append(visible, id)
		}
	}
	if len(visible) > 0 {
		t.Fatalf("source transaction %s (events %v) skipped whole by --lsn, yet its events %v reached read_committed consumers "+
			"(and its event %d, which Kafka accepts, was skipped)", lsn, txnIDs, visible, txnIDs[3])
	}
}
