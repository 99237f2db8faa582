package dedup

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/testsvc"
	"github.com/weir-broker/weir/pkg/weir"
)

// childRoleEnv, when set, makes TestMain run a child role (this test
// binary re-executed as a consumer process) instead of the tests.
const childRoleEnv = "WEIR_DEDUP_CHILD"

// The servers the tests share: one of each per test binary, a fresh
// database or key prefix per test.
var (
	testPG    *testsvc.Postgres
	testRedis *testsvc.Redis
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(runChild(role))
	}
	var err error
	if testPG, err = testsvc.StartPostgres(); err != nil {
		fmt.Fprintln(os.Stderr, "postgres:", err)
		os.Exit(1)
	}
	if testRedis, err = testsvc.StartRedis(); err != nil {
		testPG.Stop()
		fmt.Fprintln(os.Stderr, "redis:", err)
		os.Exit(1)
	}
	code := m.Run()
	testRedis.Stop()
	testPG.Stop()
	os.Exit(code)
}

func runChild(role string) int {
	switch role {
	case "pg-consumer":
		if err := runPGConsumer(); err != nil {
			fmt.Fprintln(os.Stderr, "pg-consumer:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "unknown child role %q\n", role)
		return 2
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newDatabase returns the DSN of a fresh database on the shared server.
func newDatabase(t testing.TB) string {
	t.Helper()
	dsn, err := testPG.NewDatabase(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(testCtx(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newPGStore(t testing.TB, pool *pgxpool.Pool, opts PGOptions) *PGStore {
	t.Helper()
	s, err := NewPGStore(testCtx(t), pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var redisPrefixes atomic.Int64

// newRedisStore returns a store on the shared Redis server under a key
// prefix no other test uses.
func newRedisStore(t testing.TB, opts RedisOptions) *RedisStore {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: testRedis.Addr})
	t.Cleanup(func() { client.Close() })
	if opts.Prefix == "" {
		opts.Prefix = fmt.Sprintf("test%d:%s:", redisPrefixes.Add(1), strings.ReplaceAll(t.Name(), "/", "."))
	}
	s, err := NewRedisStore(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startBroker runs an embedded Weir broker for the duration of the test;
// a restarted static member takes its place in the group at once.
func startBroker(t testing.TB) string {
	t.Helper()
	b, err := weir.Start(context.Background(), weir.Config{DataDir: t.TempDir(), Settings: map[string]string{
		"group.initial.rebalance.delay.ms": "0",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addr()
}

func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceOrders creates topic with the given partitions and writes n
// records to it, order i ("order-00i" in the order-id header) to
// partition i % partitions, and returns them as written.
func produceOrders(t testing.TB, addr, topic string, partitions int32, n int) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t)
	adm := kadm.NewClient(newClient(t, addr))
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp[topic].Err; err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range n {
		id := fmt.Sprintf("order-%03d", i)
		recs = append(recs, &kgo.Record{Partition: int32(i) % partitions, Value: []byte("reserve 1 widget"),
			Headers: []kgo.RecordHeader{{Key: "order-id", Value: []byte(id)}}})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return recs
}
