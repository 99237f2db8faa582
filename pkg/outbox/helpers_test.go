package outbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/testsvc"
	"github.com/weir-broker/weir/pkg/weir"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// env is one test's database (migrated outbox, plus an orders table for
// the business rows) and broker (with an events topic).
type env struct {
	t       testing.TB
	dsn     string
	pool    *pgxpool.Pool
	brokers string
	topic   string
	parts   int32
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvOn(t, "", "orders")
}

// newEnvOn is newEnv on the broker at brokers (a new one if empty), with
// topic as the events topic.
func newEnvOn(t testing.TB, brokers, topic string) *env {
	t.Helper()
	return newEnvAt(t, pg, brokers, topic)
}

// newEnvAt is newEnvOn with a database of the PostgreSQL server srv.
func newEnvAt(t testing.TB, srv *testsvc.Postgres, brokers, topic string) *env {
	t.Helper()
	ctx := testCtx(t)
	dsn, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if brokers == "" {
		b, err := weir.Start(ctx, weir.Config{DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		brokers = b.Addr()
	}
	e := &env{t: t, dsn: dsn, pool: pool, brokers: brokers, topic: topic, parts: 3}
	adm := kadm.NewClient(e.client())
	resp, err := adm.CreateTopic(ctx, e.parts, 1, nil, e.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) client(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.brokers)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// placeOrder writes an order and its event in one transaction, as an
// application does. The event's key is the customer, its payload the
// order id.
func (e *env) placeOrder(ctx context.Context, customer string) (int64, error) {
	var id int64
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		var order int64
		if err := tx.QueryRow(ctx, `INSERT INTO orders (customer) VALUES ($1) RETURNING id`, customer).Scan(&order); err != nil {
			return err
		}
		var err error
		id, err = Write(ctx, tx, Event{
			Topic:   e.topic,
			Key:     []byte(customer),
			Payload: []byte(strconv.FormatInt(order, 10)),
			Headers: map[string]string{"type": "order-placed"},
		})
		return err
	})
	return id, err
}

// placeOrders writes n orders for customers c0..c6 and returns the event ids.
func (e *env) placeOrders(n int) []int64 {
	e.t.Helper()
	ctx := testCtx(e.t)
	ids := make([]int64, 0, n)
	for i := range n {
		id, err := e.placeOrder(ctx, fmt.Sprintf("c%d", i%7))
		if err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// config is a relay configuration for this environment.
func (e *env) config(id string, batch int) RelayConfig {
	return RelayConfig{RelayID: id, Brokers: []string{e.brokers}, BatchSize: batch, PollInterval: 10 * time.Millisecond}
}

// running is a relay started in this process.
type running struct {
	r      *Relay
	cancel context.CancelFunc
	done   chan error
}

func (e *env) startRelay(cfg RelayConfig) *running {
	e.t.Helper()
	r, err := NewRelay(e.pool, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	e.t.Cleanup(func() { run.stop() })
	return run
}

// stop cancels the relay and returns what Run returned.
func (r *running) stop() error {
	r.cancel()
	err := <-r.done
	r.done <- err // stop may be called again
	return err
}

// states counts outbox rows by state.
func (e *env) states(ctx context.Context) map[string]int {
	e.t.Helper()
	rows, err := e.pool.Query(ctx, `SELECT state, count(*) FROM weir_outbox GROUP BY state`)
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			e.t.Fatal(err)
		}
		got[s] = n
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return got
}

// waitAllSent polls until every outbox row is sent.
func (e *env) waitAllSent(want int) {
	e.t.Helper()
	ctx := testCtx(e.t)
	for {
		s := e.states(ctx)
		if s[StateSent] == want && s[StatePending] == 0 && s[StateClaimed] == 0 {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("rows not all sent: %v, want %d sent", s, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// published is an event as read back from the topic.
type published struct {
	id        int64
	partition int32
	offset    int64
	key       string
	payload   string
	headers   map[string]string
}

// readTopic reads the events topic from the start to its current end at
// the given isolation level. It marks the end by producing a sentinel
// record (no event id header) to every partition and reading until all
// of them are seen: read_committed delivers a sentinel only once every
// transaction before it is settled.
func (e *env) readTopic(level kgo.IsolationLevel) []published {
	e.t.Helper()
	ctx := testCtx(e.t)
	mark := strconv.FormatInt(time.Now().UnixNano(), 10)
	prod := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range e.parts {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: e.topic, Partition: p, Value: []byte("sentinel " + mark)}).FirstErr(); err != nil {
			e.t.Fatal(err)
		}
	}
	cons := e.client(kgo.ConsumeTopics(e.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	var out []published
	seen := map[int32]bool{}
	for len(seen) < int(e.parts) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("reading %s: %v (sentinels seen %v)", e.topic, ctx.Err(), seen)
		}
		fs.EachError(func(t string, p int32, err error) { e.t.Fatalf("fetch %s/%d: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "sentinel "+mark {
				seen[r.Partition] = true
				return
			}
			hs := map[string]string{}
			for _, h := range r.Headers {
				hs[h.Key] = string(h.Value)
			}
			idText, ok := hs[EventIDHeader]
			if !ok {
				return // an earlier read's sentinel
			}
			id, err := strconv.ParseInt(idText, 10, 64)
			if err != nil {
				e.t.Fatalf("bad %s header %q", EventIDHeader, idText)
			}
			out = append(out, published{id: id, partition: r.Partition, offset: r.Offset, key: string(r.Key), payload: string(r.Value), headers: hs})
		})
	}
	return out
}

// assertExactlyOnce checks that the read_committed view of the topic
// holds each of ids exactly once and nothing else, and that events of one
// key appear in id order.
func (e *env) assertExactlyOnce(ids []int64) []published {
	e.t.Helper()
	got := e.readTopic(kgo.ReadCommitted())
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	count := map[int64]int{}
	for _, p := range got {
		count[p.id]++
	}
	var dup, missing, unknown []int64
	for id, n := range count {
		if !want[id] {
			unknown = append(unknown, id)
		} else if n > 1 {
			dup = append(dup, id)
		}
	}
	for _, id := range ids {
		if count[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(dup)+len(missing)+len(unknown) > 0 {
		e.t.Fatalf("read_committed: %d records for %d events; duplicated %v, missing %v, unknown %v", len(got), len(ids), dup, missing, unknown)
	}
	return got
}

// assertKeyOrder checks that the events of each key appear in id order,
// which holds when one relay publishes them.
func assertKeyOrder(t testing.TB, got []published) {
	t.Helper()
	last := map[string]int64{}
	for _, p := range got { // per partition in offset order, as fetched
		if p.id < last[p.key] {
			t.Errorf("key %s: event %d after %d", p.key, p.id, last[p.key])
		}
		last[p.key] = p.id
	}
}

// child is a relay process.
type child struct {
	cmd    *exec.Cmd
	stdout strings.Builder
	mu     sync.Mutex
	exited chan struct{}
}

// startChild runs a relay process; crashPoint may be empty.
func (e *env) startChild(relayID string, batch int, crashPoint string, crashBatch int) *child {
	e.t.Helper()
	c := &child{exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(),
		childRoleEnv+"=relay",
		"WEIR_OUTBOX_DSN="+e.dsn,
		"WEIR_OUTBOX_BROKERS="+e.brokers,
		"WEIR_OUTBOX_RELAY="+relayID,
		"WEIR_OUTBOX_BATCH="+strconv.Itoa(batch),
		"WEIR_OUTBOX_CRASH_POINT="+crashPoint,
		"WEIR_OUTBOX_CRASH_BATCH="+strconv.Itoa(crashBatch),
	)
	return e.runChild(c)
}

// runChild starts c's command, its output kept, and kills it when the
// test ends.
func (e *env) runChild(c *child) *child {
	e.t.Helper()
	c.cmd.Stdout = &lockedWriter{mu: &c.mu, w: &c.stdout}
	c.cmd.Stderr = os.Stderr
	if err := c.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	e.t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.exited
	})
	return c
}

// wait waits for the child to exit and reports whether SIGKILL ended it.
func (c *child) wait(ctx context.Context) (killed bool, err error) {
	select {
	case <-c.exited:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return false, errors.New("no wait status")
	}
	return ws.Signaled() && ws.Signal() == syscall.SIGKILL, nil
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stdout.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
