package outbox

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/testsvc"
)

// attachEnv is e on the database of the same name on server srv (a
// standby, a backup or a copy of e's server): same broker and topic, no
// migration.
func attachEnv(t *testing.T, e *env, srv *testsvc.Postgres) *env {
	t.Helper()
	n := *e
	n.dsn = srv.DSN(e.pool.Config().ConnConfig.Database)
	pool, err := pgxpool.New(testCtx(t), n.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	n.pool = pool
	return &n
}

// published runs relay c1 until ids are all published, then stops it.
func (e *env) publishWithCDC(ids []int64) {
	e.t.Helper()
	_, stop := e.startCDC("c1")
	e.waitPublishedWithin(ids, 30*time.Second)
	if err := stop(); err != nil {
		e.t.Fatal(err)
	}
}

// assertRefused checks that relay c1 on e refuses to start with an
// ErrSourceChanged whose message contains want.
func (e *env) assertRefused(want string) {
	e.t.Helper()
	err := runUntilRefused(e.t.(*testing.T), e.cdcRelay("c1"), 30*time.Second)
	if !errors.Is(err, ErrSourceChanged) || !strings.Contains(err.Error(), want) {
		e.t.Fatalf("run: %v; want %v saying %q", err, ErrSourceChanged, want)
	}
}

// TestCDCRefusesAfterFailoverToALaggingStandby publishes events from a
// primary whose standby stopped receiving before the last of them, loses
// the primary and promotes the standby. The standby has no slot
// (PostgreSQL does not copy logical slots to standbys) and lacks the last
// transactions, whose positions its new ones reuse: the relay refuses to
// start, and the topic holds every published event once.
func TestCDCRefusesAfterFailoverToALaggingStandby(t *testing.T) {
	ctx := testCtx(t)
	primary := startPostgres(t)
	a := newEnvAt(t, primary, "", "orders-failover")
	a.cdcSetup("c1")
	first := a.placeOrdersInTxns(3, 1)
	a.publishWithCDC(first)

	standby, err := primary.BaseBackup(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(standby.Stop)
	if err := standby.Start(); err != nil {
		t.Fatal(err)
	}
	target := a.walLSN()
	s := attachEnv(t, a, standby)
	for {
		var replayed string
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn()::text, '0/0')`).Scan(&replayed); err != nil {
			t.Fatal(err)
		}
		if lsn, _ := pglogrepl.ParseLSN(replayed); lsn >= target {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.pool.Close()
	standby.Halt() // it receives nothing from here on

	lost := a.placeOrdersInTxns(2, 1)
	all := append(append([]int64{}, first...), lost...)
	a.publishWithCDC(all)
	a.pool.Close()
	primary.Halt() // the primary is lost

	if err := standby.Start(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	b := attachEnv(t, a, standby)
	b.placeOrdersInTxns(2, 1)
	b.assertRefused("is missing")
	b.assertExactlyOnce(all)

	// The way on the error gives: drop the relay id's objects, start a
	// new relay id; it publishes what is written from then on, once.
	if _, _, err := b.cdcRelay("c1").DropSlot(ctx); err != nil {
		t.Fatal(err)
	}
	next := attachEnv(t, a, standby)
	next.topic = "orders-after-failover"
	next.createTopic()
	next.cdcSetup("c2")
	ids := next.placeOrdersInTxns(2, 1)
	_, stop := next.startCDC("c2")
	next.waitPublishedWithin(ids, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// createTopic creates e's events topic.
func (e *env) createTopic() {
	e.t.Helper()
	resp, err := kadm.NewClient(e.client()).CreateTopic(testCtx(e.t), e.parts, 1, nil, e.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// TestCDCRefusesAfterRestoreFromABaseBackup restores a database from a
// base backup taken before its last published events: the backup has no
// slot, and its new transactions reuse positions the progress covers, so
// the relay refuses to start.
func TestCDCRefusesAfterRestoreFromABaseBackup(t *testing.T) {
	srv := startPostgres(t)
	a := newEnvAt(t, srv, "", "orders-backup")
	a.cdcSetup("c1")
	first := a.placeOrdersInTxns(3, 1)
	a.publishWithCDC(first)
	backup, err := srv.BaseBackup(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backup.Stop)
	more := a.placeOrdersInTxns(2, 1)
	all := append(append([]int64{}, first...), more...)
	a.publishWithCDC(all)
	a.pool.Close()
	srv.Halt()

	if err := backup.Start(); err != nil {
		t.Fatal(err)
	}
	b := attachEnv(t, a, backup)
	b.placeOrdersInTxns(2, 1)
	b.assertRefused("is missing")
	b.assertExactlyOnce(all)
}

// TestCDCRefusesAfterRestoreOfACopyWithItsSlot restores a file-system
// copy of the cluster, slot included, taken before the last published
// events. At first the copy's WAL ends before the last published
// transaction. Once new transactions carry it past that position, the
// slot (confirmed before it) streams them where the progress records
// another transaction: the relay refuses rather than skip or publish
// them.
func TestCDCRefusesAfterRestoreOfACopyWithItsSlot(t *testing.T) {
	srv := startPostgres(t)
	a := newEnvAt(t, srv, "", "orders-copy")
	a.cdcSetup("c1")
	first := a.placeOrdersInTxns(3, 1)
	a.publishWithCDC(first)
	a.pool.Close()
	srv.Halt()
	cp, err := srv.Copy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	a = attachEnv(t, a, srv)
	more := a.placeOrdersInTxns(2, 1)
	all := append(append([]int64{}, first...), more...)
	a.publishWithCDC(all)
	end := a.walLSN()
	a.pool.Close()
	srv.Halt()

	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	b := attachEnv(t, a, cp)
	b.assertRefused("WAL ends at")
	b.pushWALPast(end)
	b.placeOrdersInTxns(2, 1)
	b.assertRefused("is not the one the relay published from")
	b.assertExactlyOnce(all)
}

// TestCDCRefusesWhenTheRecordedTransactionDiffers kills a relay after a
// Kafka commit it had not confirmed to its slot, so that the next relay
// must find the recorded transaction streamed again at its position;
// the record is then replaced by one with the same position and
// transaction id but other events, as a database with another history
// would present. The relay refuses rather than skip the transaction it
// is streamed.
func TestCDCRefusesWhenTheRecordedTransactionDiffers(t *testing.T) {
	e := newCDCEnv(t)
	ctx := testCtx(t)
	e.cdcSetup("c1")
	e.placeOrdersInTxns(4, 2)
	c := e.startCDCChild("c1", crashCDCBeforeAck, 1)
	if killed, err := c.wait(ctx); err != nil || !killed {
		t.Fatalf("child: killed %v, err %v", killed, err)
	}

	// The last progress record, with a digest of other events.
	cl := e.client(kgo.ConsumeTopics(DefaultProgressTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var key, value []byte
	for key == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no progress record")
		}
		fs.EachRecord(func(r *kgo.Record) {
			if strings.HasPrefix(string(r.Key), cdcKeyPrefix) {
				key, value = r.Key, r.Value
			}
		})
	}
	var p cdcProgress
	if err := json.Unmarshal(value, &p); err != nil {
		t.Fatal(err)
	}
	p.Digest = strings.Repeat("0", len(p.Digest))
	forged, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	prod := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: DefaultProgressTopic, Partition: 0, Key: key, Value: forged}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.assertRefused("is not the one the relay published from")
}
