package outbox

import (
	"bytes"
	crand "crypto/rand"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// logBuffer collects a relay's logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// logger is a logger writing to l.
func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, nil))
}

// waitFor polls the logs until re matches and returns the match's
// submatches.
func (l *logBuffer) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.mu.Lock()
		m := re.FindStringSubmatch(l.buf.String())
		l.mu.Unlock()
		if m != nil {
			return m
		}
		if time.Now().After(deadline) {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no log line matching %s; logs:\n%s", re, l.buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tinyTopic creates a topic whose records may not exceed 1 KiB.
func (e *env) tinyTopic(name string) {
	e.t.Helper()
	limit := "1024"
	resp, err := kadm.NewClient(e.client()).CreateTopic(testCtx(e.t), 1, 1, map[string]*string{"max.message.bytes": &limit}, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// incompressible returns n random bytes, which the client's compression
// cannot bring under a topic's size limit.
func incompressible(n int) []byte {
	b := make([]byte, n)
	crand.Read(b)
	return b
}

// writeEvent writes one event in a transaction of its own.
func (e *env) writeEvent(ev Event) int64 {
	e.t.Helper()
	ctx := testCtx(e.t)
	var id int64
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		var err error
		id, err = Write(ctx, tx, ev)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// refusalTxnTimeout is the relays' transaction timeout in the tests of
// refused events: a produce is given half of it before it fails.
const refusalTxnTimeout = 4 * time.Second

// refusedRE matches the relay's log line about a refused event and
// captures its id.
var refusedRE = regexp.MustCompile(`refused by Kafka.* id=(\d+)`)

// TestPollSkippedEventUnblocksTheRelay writes an event its topic refuses
// (larger than the topic's max.message.bytes) between others: the relay
// publishes nothing of the batch holding it, says which event and how to
// skip it; once skipped, every other event is published exactly once,
// the skipped one nowhere, and every row is sent.
func TestPollSkippedEventUnblocksTheRelay(t *testing.T) {
	e := newEnv(t)
	e.tinyTopic("orders-tiny")
	before := e.placeOrders(3)
	big := e.writeEvent(Event{Topic: "orders-tiny", Payload: incompressible(4096)})
	after := e.placeOrders(3)

	var logs logBuffer
	cfg := e.config("r1", 2)
	cfg.Logger = logs.logger()
	cfg.TxnTimeout = refusalTxnTimeout
	r := e.startRelay(cfg)
	if m := logs.waitFor(t, refusedRE); m[1] != strconv.FormatInt(big, 10) {
		t.Fatalf("refused event %s, want %d", m[1], big)
	}
	e.waitPublishedWithin(before[:2], 30*time.Second) // the batch before the refused one
	if s := e.states(testCtx(t)); s[StateSent] != 2 {
		t.Fatalf("rows %v while the refused event blocks the relay, want the first batch sent", s)
	}

	skipper, err := NewRelay(e.pool, e.config("r1", 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := skipper.Skip(testCtx(t), big, "larger than the topic allows"); err != nil {
		t.Fatal(err)
	}
	e.waitAllSent(len(before) + 1 + len(after))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if got := r.r.Stats().Events; got != int64(len(before)+len(after)) {
		t.Errorf("relay counts %d events published, want %d (the skipped one is not)", got, len(before)+len(after))
	}
	e.assertExactlyOnce(append(before, after...))
	tiny := *e
	tiny.topic, tiny.parts = "orders-tiny", 1
	if got := tiny.readTopic(kgo.ReadUncommitted()); len(got) != 0 {
		t.Fatalf("the skipped event is in its topic: %v", got)
	}
}

// TestCDCSkippedEventUnblocksTheRelay is TestPollSkippedEventUnblocksTheRelay
// in change-data-capture mode, where deleting the refused row changes
// nothing (the slot streams the insert again): skipping the event by id
// unblocks the relay; a second refused event, whose row the application
// deleted, is skipped with its whole source transaction by commit LSN.
func TestCDCSkippedEventUnblocksTheRelay(t *testing.T) {
	e := newCDCEnv(t)
	e.tinyTopic("orders-tiny")
	cfg := e.config("c1", 0)
	e.cdcSetupWith(cfg)
	before := e.placeOrdersInTxns(2, 1)
	big := e.writeEvent(Event{Topic: "orders-tiny", Payload: incompressible(4096)})
	middle := e.placeOrdersInTxns(2, 1)
	big2 := e.writeEvent(Event{Topic: "orders-tiny", Payload: incompressible(4096)})
	after := e.placeOrdersInTxns(2, 1)

	var logs logBuffer
	cfg.Logger = logs.logger()
	cfg.TxnTimeout = refusalTxnTimeout
	_, stop := e.startCDCWith(cfg)
	if m := logs.waitFor(t, refusedRE); m[1] != strconv.FormatInt(big, 10) {
		t.Fatalf("refused event %s, want %d", m[1], big)
	}
	e.waitPublishedWithin(before, 30*time.Second)
	skipper, err := NewCDCRelay(e.dsn, e.config("c1", 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := skipper.SkipEvent(ctx, big, "larger than the topic allows"); err != nil {
		t.Fatal(err)
	}
	e.waitPublishedWithin(append(before, middle...), 30*time.Second)

	// The second refused event's row is gone: it is skipped by the
	// commit LSN the relay names.
	if _, err := e.pool.Exec(ctx, `DELETE FROM weir_outbox WHERE id = $1`, big2); err != nil {
		t.Fatal(err)
	}
	lsnRE := regexp.MustCompile(`refused by Kafka.* id=` + strconv.FormatInt(big2, 10) + ` .*commit_lsn=(\S+)`)
	lsn := logs.waitFor(t, lsnRE)[1]
	if err := skipper.SkipEvent(ctx, big2, "gone"); err == nil {
		t.Fatal("skipping a deleted row by id succeeded; want an error pointing to --lsn")
	}
	if err := skipper.SkipTransaction(ctx, lsn, "larger than the topic allows"); err != nil {
		t.Fatal(err)
	}
	e.waitPublishedWithin(append(append(before, middle...), after...), 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	tiny := *e
	tiny.topic = "orders-tiny"
	if got := tiny.readTopic(kgo.ReadUncommitted()); len(got) != 0 {
		t.Fatalf("a skipped event is in its topic: %v", got)
	}
}
