package dedup

// A consumer applying records into PostgreSQL with ProcessRecordTx, run
// as a child process and SIGKILLed after a database commit and before the
// Kafka commit of the same records. Restarted, it must resume from the
// offsets in the database: not handed those records again, and every
// record's effect in the table exactly once.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// runPGConsumer is the child role "pg-consumer": a static member of
// WEIR_DEDUP_GROUP that seeks to the offsets stored in WEIR_DEDUP_DSN on
// assignment and applies each record of WEIR_DEDUP_TOPIC with
// ProcessRecordTx, inserting a reservation. It prints "delivered P O" for
// every record polled, "applied P O" each time the handler runs and
// "stored P O" after the record's transaction committed, and commits each
// poll's records to Kafka after applying them all. With WEIR_DEDUP_KILL_AFTER
// = N > 0 it SIGKILLs itself right after the N-th stored record. It exits
// once the stored offsets cover WEIR_DEDUP_TOTAL records.
func runPGConsumer() error {
	ctx := context.Background()
	group, topic := os.Getenv("WEIR_DEDUP_GROUP"), os.Getenv("WEIR_DEDUP_TOPIC")
	killAfter, err := strconv.Atoi(os.Getenv("WEIR_DEDUP_KILL_AFTER"))
	if err != nil {
		return err
	}
	total, err := strconv.ParseInt(os.Getenv("WEIR_DEDUP_TOTAL"), 10, 64)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, os.Getenv("WEIR_DEDUP_DSN"))
	if err != nil {
		return err
	}
	defer pool.Close()
	store, err := NewPGStore(ctx, pool, PGOptions{})
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(os.Getenv("WEIR_DEDUP_BROKERS")),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.AdjustFetchOffsetsFn(store.AdjustOffsets(group)),
		// A static member: the restarted process takes the killed one's
		// place at once instead of waiting for its session to expire.
		kgo.InstanceID("pg-consumer"),
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	keyFn := KeyFromHeader("order-id")
	stored := 0
	for {
		fs := cl.PollRecords(ctx, 5)
		fs.EachError(func(t string, p int32, err error) { fmt.Fprintf(os.Stderr, "fetch %s[%d]: %v\n", t, p, err) })
		recs := fs.Records()
		for _, r := range recs {
			fmt.Printf("delivered %d %d\n", r.Partition, r.Offset)
		}
		for _, r := range recs {
			_, err := store.ProcessRecordTx(ctx, group, keyFn, r, func(tx pgx.Tx, r *kgo.Record) error {
				fmt.Printf("applied %d %d\n", r.Partition, r.Offset)
				id, _ := keyFn(r)
				return reserve(ctx, tx, id, r)
			})
			if err != nil {
				return err
			}
			fmt.Printf("stored %d %d\n", r.Partition, r.Offset)
			if stored++; stored == killAfter {
				// Stdout is unbuffered: every line above has reached
				// the parent.
				return syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
		if len(recs) > 0 {
			if err := cl.CommitRecords(ctx, recs...); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
		offs, err := store.Offsets(ctx, group, topic)
		if err != nil {
			return err
		}
		var covered int64
		for _, next := range offs[topic] {
			covered += next
		}
		if covered == total {
			return nil
		}
	}
}

// consumerRun is what the parent read from one pg-consumer process.
type consumerRun struct {
	delivered, applied, stored map[string]bool // "P O"
	killed                     bool
}

func runPGConsumerChild(t *testing.T, env ...string) consumerRun {
	t.Helper()
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childRoleEnv+"=pg-consumer"), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	run := consumerRun{delivered: map[string]bool{}, applied: map[string]bool{}, stored: map[string]bool{}}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		verb, at, ok := strings.Cut(sc.Text(), " ")
		switch {
		case ok && verb == "delivered":
			run.delivered[at] = true
		case ok && verb == "applied":
			if run.applied[at] {
				t.Errorf("handler ran twice for %s in one process", at)
			}
			run.applied[at] = true
		case ok && verb == "stored":
			run.stored[at] = true
		default:
			t.Errorf("consumer printed %q", sc.Text())
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		run.killed = true
	} else if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	return run
}

func TestPGConsumerResumesFromDatabaseOffsetsAfterSIGKILL(t *testing.T) {
	ctx := testCtx(t)
	addr := startBroker(t)
	const topic, group, total, killAfter = "orders", "inventory", 24, 7
	recs := produceOrders(t, addr, topic, 2, total)
	dsn := newDatabase(t)
	pool := newPool(t, dsn)
	createReservations(t, pool)
	env := []string{"WEIR_DEDUP_BROKERS=" + addr, "WEIR_DEDUP_GROUP=" + group, "WEIR_DEDUP_TOPIC=" + topic,
		"WEIR_DEDUP_DSN=" + dsn, "WEIR_DEDUP_TOTAL=" + strconv.Itoa(total)}

	first := runPGConsumerChild(t, append(env, "WEIR_DEDUP_KILL_AFTER="+strconv.Itoa(killAfter))...)
	if !first.killed || len(first.stored) != killAfter {
		t.Fatalf("first consumer: killed=%v after storing %d records; want killed after %d", first.killed, len(first.stored), killAfter)
	}
	store := newPGStore(t, pool, PGOptions{})
	dbOffsets, err := store.Offsets(ctx, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	// The kill came after the database commit and before the Kafka
	// commit of those records: Kafka's offsets lag the database's.
	committed, err := kadm.NewClient(newClient(t, addr)).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var dbCovered int64
	lagging := 0
	for p, next := range dbOffsets[topic] {
		dbCovered += next
		c, ok := committed.Lookup(topic, p)
		switch {
		case ok && c.Err == nil && c.At > next:
			t.Fatalf("partition %d: Kafka commit %d is ahead of the database offset %d", p, c.At, next)
		case !ok || c.Err != nil || c.At < next:
			lagging++
		}
	}
	if lagging == 0 {
		t.Fatalf("Kafka's commits %v already cover the database offsets %v; the kill proves nothing", committed, dbOffsets)
	}
	if dbCovered != killAfter {
		t.Fatalf("database offsets %v cover %d records, want %d", dbOffsets, dbCovered, killAfter)
	}

	second := runPGConsumerChild(t, append(env, "WEIR_DEDUP_KILL_AFTER=0")...)
	if second.killed {
		t.Fatal("second consumer was killed")
	}
	for at := range first.stored {
		if second.delivered[at] {
			t.Errorf("record %s, committed to the database before the kill, was delivered again", at)
		}
		if second.applied[at] {
			t.Errorf("handler ran again for record %s", at)
		}
	}
	// It started each partition exactly at the database's offset.
	for p := range int32(2) {
		next := dbOffsets[topic][p]
		if next < total/2 && !second.delivered[fmt.Sprintf("%d %d", p, next)] {
			t.Errorf("partition %d: record at the stored offset %d not delivered after the restart", p, next)
		}
		if next > 0 && second.delivered[fmt.Sprintf("%d %d", p, next-1)] {
			t.Errorf("partition %d: record before the stored offset %d delivered after the restart", p, next)
		}
	}
	if n := len(first.stored) + len(second.applied); n != total {
		t.Errorf("handler applied %d records before the kill and %d after, want %d in all", len(first.stored), len(second.applied), total)
	}
	got := reservations(t, pool)
	for _, r := range recs {
		id := string(r.Headers[0].Value)
		if got[id] != 1 {
			t.Errorf("%s reserved %d times, want once", id, got[id])
		}
	}
	if len(got) != total {
		t.Errorf("%d orders reserved, want %d", len(got), total)
	}
}

// TestPGReplayChangesNothing: a consumer applies a topic into the
// database; then the group's Kafka offsets are reset to the start and a
// new consumer, not seeking to the stored offsets, replays every record.
// No handler runs, and the effects and the stored offsets stay as they
// were.
func TestPGReplayChangesNothing(t *testing.T) {
	ctx := testCtx(t)
	addr := startBroker(t)
	const topic, group, total = "orders", "inventory", 20
	produceOrders(t, addr, topic, 2, total)
	pool := newPool(t, newDatabase(t))
	s := newPGStore(t, pool, PGOptions{})
	createReservations(t, pool)
	keyFn := KeyFromHeader("order-id")

	consume := func(opts ...kgo.Opt) (ran int) {
		cl := newClient(t, addr, append([]kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxWait(time.Second)}, opts...)...)
		defer cl.Close()
		for seen := 0; seen < total; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d records", seen, total)
			}
			fs.EachError(func(t2 string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", t2, p, err) })
			for _, r := range fs.Records() {
				applied, err := s.ProcessRecordTx(ctx, group, keyFn, r, func(tx pgx.Tx, r *kgo.Record) error {
					return reserve(ctx, tx, string(r.Headers[0].Value), r)
				})
				if err != nil {
					t.Fatal(err)
				}
				if applied {
					ran++
				}
				seen++
			}
			if err := cl.CommitRecords(ctx, fs.Records()...); err != nil {
				t.Fatal(err)
			}
		}
		return ran
	}
	if ran := consume(kgo.AdjustFetchOffsetsFn(s.AdjustOffsets(group))); ran != total {
		t.Fatalf("first pass applied %d records, want %d", ran, total)
	}
	effects := reservations(t, pool)
	offsets, err := s.Offsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}

	adm := kadm.NewClient(newClient(t, addr))
	reset := kadm.Offsets{}
	for p := range int32(2) {
		reset.Add(kadm.Offset{Topic: topic, Partition: p, At: 0, LeaderEpoch: -1})
	}
	if err := adm.CommitAllOffsets(ctx, group, reset); err != nil {
		t.Fatal(err)
	}
	if ran := consume(); ran != 0 {
		t.Errorf("replay ran the handler for %d records, want none", ran)
	}
	if got := reservations(t, pool); fmt.Sprint(got) != fmt.Sprint(effects) {
		t.Errorf("effects after replay %v, before %v", got, effects)
	}
	if got, err := s.Offsets(ctx, group); err != nil || fmt.Sprint(got) != fmt.Sprint(offsets) {
		t.Errorf("offsets after replay %v (%v), before %v", got, err, offsets)
	}
}
