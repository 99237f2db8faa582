package outbox

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TestCDCSkipByLSNRacingAPublishedPartIsRefusedAndVoid has a skip by LSN
// of a source transaction checked while no part of it is published, and
// a part published between that check and the skip record (a refused
// event's cause fixed meanwhile: its topic's limit raised). The package
// doc: a skip by --lsn of a transaction with a part published is
// refused, skip by id instead; a transaction is never half published
// and half skipped by it.
//
// The correct outcome: SkipTransaction fails, the relay does not skip
// the rest of the transaction (its last event is published once the
// unreadable row before it is skipped by id), and every event is
// published once.
func TestCDCSkipByLSNRacingAPublishedPartIsRefusedAndVoid(t *testing.T) {
	e := newCDCEnv(t)
	e.tinyTopic("orders-tiny")
	cfg := e.config("sr", 2)
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
		var bad int64 // unreadable: its headers are not strings
		if err := tx.QueryRow(ctx, `INSERT INTO weir_outbox (topic, payload, headers) VALUES ($1, 'x', '{"attempt": 1}') RETURNING id`, e.topic).Scan(&bad); err != nil {
			return err
		}
		ids = append(ids, bad)
		id, err := Write(ctx, tx, Event{Topic: e.topic, Payload: []byte("d")})
		ids = append(ids, id)
		return err
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
			if err == nil && last != nil && last.Partial {
				return // the first part is published
			}
			if time.Now().After(deadline) {
				t.Errorf("no part published 30 s after the limit was raised: %+v, %v", last, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	lsn := logs.waitFor(t, regexp.MustCompile(`refused by Kafka.* id=`+strconv.FormatInt(ids[0], 10)+` .*commit_lsn=(\S+)`))[1]
	errLSN := skipper.SkipTransaction(ctx, lsn, "refused")
	t.Logf("skip --lsn %s: %v", lsn, errLSN)
	if errLSN == nil {
		t.Errorf("skip by LSN of transaction %s accepted although a part of it was published before its record", lsn)
	}
	if err := skipper.SkipEvent(ctx, ids[2], "unreadable headers"); err != nil {
		t.Fatal(err)
	}
	seen := e.waitSeen(ids[3:], 30*time.Second)
	for _, id := range []int64{ids[1], ids[3]} {
		if seen[id] != 1 {
			t.Errorf("event %d published %d times; want once (the rest of the transaction is not skipped by a void skip)", id, seen[id])
		}
	}
}
