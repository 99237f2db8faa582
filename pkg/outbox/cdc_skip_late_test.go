package outbox

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TestCDCSkipByLSNOfATransactionPublishedMeanwhileIsRefused has a skip by
// LSN of a source transaction (one event refused by Kafka, one not)
// checked while nothing of it is published, and the whole transaction
// published between that check and the skip record (the refused event's
// cause fixed meanwhile: its topic's limit raised). SkipTransaction's doc:
// it refuses a transaction of which a part is already published, and
// looks again once its record is written; a skip accepted means the
// events are lost to consumers.
//
// The correct outcome: SkipTransaction fails, since every event of the
// transaction is in the topic. It looks only for a progress record of a
// part (Partial), so a transaction published whole is "skipped" with
// success while its events were published.
func TestCDCSkipByLSNOfATransactionPublishedMeanwhileIsRefused(t *testing.T) {
	e := newCDCEnv(t)
	e.tinyTopic("orders-tiny")
	cfg := e.config("sl", 0)
	cfg.TxnTimeout = refusalTxnTimeout
	e.cdcSetupWith(cfg)
	ctx := testCtx(t)
	var ids []int64
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		for _, ev := range []Event{
			{Topic: "orders-tiny", Payload: incompressible(4096)}, // refused until the limit is raised
			{Topic: e.topic, Payload: []byte("b")},
		} {
			id, err := Write(ctx, tx, ev)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	rcfg := cfg
	rcfg.Logger = logs.logger()
	_, stop := e.startCDCWith(rcfg)
	defer stop()

	skipper, err := NewCDCRelay(e.dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := skipper.identifyOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lsn := logs.waitFor(t, regexp.MustCompile(`refused by Kafka.* id=`+strconv.FormatInt(ids[0], 10)+` .*commit_lsn=(\S+)`))[1]
	skipper.skipChecked = func() {
		limit := "1048576"
		rs, err := kadm.NewClient(e.client()).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, "orders-tiny")
		if err == nil {
			_, err = rs.On("orders-tiny", nil)
		}
		if err != nil {
			t.Error(err)
			return
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			last, err := lastCDCProgress(ctx, skipper.cfg, src)
			if err == nil && last != nil && last.CommitLSN == lsn {
				return // the transaction is published
			}
			if time.Now().After(deadline) {
				t.Errorf("transaction %s not published 30 s after the limit was raised: %+v, %v", lsn, last, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	errLSN := skipper.SkipTransaction(ctx, lsn, "refused")
	t.Logf("skip --lsn %s: %v", lsn, errLSN)
	seen := e.waitSeen(ids[1:], 30*time.Second)
	if errLSN == nil {
		t.Errorf("skip by LSN of transaction %s accepted (its events said lost to consumers) although its events are in the topic: %v", lsn, seen)
	}
}
