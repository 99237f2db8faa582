package testsvc

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func TestPostgresServesIsolatedDatabases(t *testing.T) {
	pg, err := StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var dsns []string
	for range 2 {
		dsn, err := pg.NewDatabase(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dsns = append(dsns, dsn)
	}
	if dsns[0] == dsns[1] {
		t.Fatalf("two databases share a DSN: %s", dsns[0])
	}
	a, err := pgx.Connect(ctx, dsns[0])
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if _, err := a.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := a.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 7 {
		t.Fatalf("read back %d, %v; want 7", v, err)
	}
	b, err := pgx.Connect(ctx, dsns[1])
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if _, err := b.Exec(ctx, "SELECT v FROM t"); err == nil {
		t.Fatal("table of one database visible in another")
	}
}

func TestRedisAnswers(t *testing.T) {
	r, err := StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	ok, err := c.SetNX(ctx, "k", "v", time.Minute).Result()
	if err != nil || !ok {
		t.Fatalf("first SET NX: %v, %v; want true", ok, err)
	}
	ok, err = c.SetNX(ctx, "k", "v", time.Minute).Result()
	if err != nil || ok {
		t.Fatalf("second SET NX: %v, %v; want false", ok, err)
	}
}
