package e2e

// The idempotent consumer end to end: orders, some of them duplicated
// upstream, consumed by a group member that applies each order through
// pkg/dedup into a bbolt file and commits offsets after processing, and
// that is SIGKILLed between applying and committing. Every order must be
// applied exactly once however often it is delivered.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	bolt "go.etcd.io/bbolt"

	"github.com/weir-broker/weir/pkg/dedup"
)

// appliedBucket holds, in the consumer's dedup file, how many times each
// order was applied: the handler's effect, committed with its dedup key.
var appliedBucket = []byte("applied")

// runDedupConsumer is the child role "dedup-consumer": a static group
// member reading WEIR_E2E_TOPIC that applies each record through
// BoltStore.ProcessTx keyed by its "order-id" header, incrementing that
// order's counter in the same transaction. It prints "applied ORDER
// PARTITION OFFSET" or "skipped ORDER PARTITION OFFSET" per record and
// "committed N" after committing a poll, and waits for a line on stdin at
// "pause mid-batch" (half way through a poll of two or more records) and
// "pause before-commit".
func runDedupConsumer() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "dedup-consumer:", err); return 1 }
	store, err := dedup.Open(os.Getenv("WEIR_E2E_DB"), dedup.Options{})
	if err != nil {
		return fail(err)
	}
	defer store.Close()
	opts := memberOpts(os.Getenv("WEIR_E2E_BROKERS"), os.Getenv("WEIR_E2E_GROUP"), os.Getenv("WEIR_E2E_TOPIC"), memberSession)
	// A static member: the restarted process takes the killed one's place
	// at once instead of waiting for its session to expire (KIP-345).
	cl, err := kgo.NewClient(append(opts, kgo.InstanceID("dedup-consumer"))...)
	if err != nil {
		return fail(err)
	}
	defer cl.Close()
	in := bufio.NewScanner(os.Stdin)
	pause := func(point string) bool {
		fmt.Printf("pause %s\n", point)
		return in.Scan()
	}
	keyOf := dedup.KeyFromHeader("order-id")
	ctx := context.Background()
	for {
		fs := cl.PollRecords(ctx, 10)
		fs.EachError(func(t string, p int32, err error) { fmt.Fprintf(os.Stderr, "fetch %s[%d]: %v\n", t, p, err) })
		recs := fs.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		for i, r := range recs {
			if i == len(recs)/2 && i > 0 && !pause("mid-batch") {
				return 0
			}
			key, err := keyOf(r)
			if err != nil {
				return fail(err)
			}
			ran, err := store.ProcessTx(key, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists(appliedBucket)
				if err != nil {
					return err
				}
				var n uint64
				if v := b.Get([]byte(key)); v != nil {
					n = binary.BigEndian.Uint64(v)
				}
				return b.Put([]byte(key), binary.BigEndian.AppendUint64(nil, n+1))
			})
			if err != nil {
				return fail(err)
			}
			verb := "skipped"
			if ran {
				verb = "applied"
			}
			fmt.Printf("%s %s %d %d\n", verb, key, r.Partition, r.Offset)
		}
		if !pause("before-commit") {
			return 0
		}
		if err := cl.CommitRecords(ctx, recs...); err != nil {
			return fail(fmt.Errorf("commit: %w", err))
		}
		fmt.Printf("committed %d\n", len(recs))
		cl.AllowRebalance()
	}
}

func startDedupConsumer(t *testing.T, brokers, group, topic, db string) *childMember {
	t.Helper()
	return startChild(t, "dedup-consumer", "WEIR_E2E_BROKERS="+brokers,
		"WEIR_E2E_GROUP="+group, "WEIR_E2E_TOPIC="+topic, "WEIR_E2E_DB="+db)
}

// dedupLedger is what the test learned from the consumers' output.
type dedupLedger struct {
	appliedAt   map[string]string // partition/offset -> order applied there
	appliedN    map[string]int    // order -> "applied" lines printed for it
	skippedAt   map[string]bool   // partition/offset printed as skipped
	orderAt     map[string]string // partition/offset -> order printed there, applied or skipped
	redelivered int               // skipped records at a place an order was applied before
	batch       []string          // places printed since the last commit
	committed   map[string]bool   // places covered by a printed commit
}

// read takes one line of consumer output into the ledger and returns the
// pause point it announces, if any.
func (l *dedupLedger) read(t *testing.T, line string) (pause string, applied bool) {
	t.Helper()
	f := strings.Fields(line)
	switch {
	case len(f) == 4 && (f[0] == "applied" || f[0] == "skipped"):
		at := f[2] + "/" + f[3]
		l.batch = append(l.batch, at)
		l.orderAt[at] = f[1]
		if f[0] == "applied" {
			l.appliedAt[at] = f[1]
			l.appliedN[f[1]]++
			return "", true
		}
		if _, ok := l.appliedAt[at]; ok && !l.skippedAt[at] {
			l.redelivered++
		}
		l.skippedAt[at] = true
	case len(f) == 2 && f[0] == "committed":
		for _, at := range l.batch {
			l.committed[at] = true
		}
		l.batch = nil
	case len(f) == 2 && f[0] == "pause":
		return f[1], false
	default:
		t.Errorf("consumer printed %q", line)
	}
	return "", false
}

// TestDedupConsumerAppliesEachOrderOnceAcrossSIGKILLs: orders, five of them
// published twice upstream, are consumed process-then-commit by a member
// that is SIGKILLed four times after applying records but before
// committing them (half way through a poll, just before the commit, and
// while it is still applying), so records are redelivered. In the end each
// order's counter in the dedup file is exactly 1.
func TestDedupConsumerAppliesEachOrderOnceAcrossSIGKILLs(t *testing.T) {
	b, _ := startBroker(t, map[string]string{
		"group.initial.rebalance.delay.ms": "0",
		"group.min.session.timeout.ms":     "1000", // memberSession is shorter than Kafka's 6s floor
	})
	addr := b.Addr()
	const topic, group, orders = "orders", "inventory", 60
	createTopic(t, newAdmin(t, addr), topic, 3, nil)

	orderID := func(i int) string { return fmt.Sprintf("order-%03d", i) }
	duplicated := []int{0, 11, 22, 33, 44} // an upstream retry published these twice
	var recs []*kgo.Record
	for i := range orders {
		recs = append(recs, &kgo.Record{Key: []byte(orderID(i)), Value: []byte("reserve 1 widget"),
			Headers: []kgo.RecordHeader{{Key: "order-id", Value: []byte(orderID(i))}}})
	}
	for _, i := range duplicated {
		recs = append(recs, &kgo.Record{Key: []byte(orderID(i)), Value: []byte("reserve 1 widget"),
			Headers: []kgo.RecordHeader{{Key: "order-id", Value: []byte(orderID(i))}}})
	}
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic))
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	total := len(recs)

	db := filepath.Join(t.TempDir(), "inventory.db")
	ctx := testCtx(t)
	ledger := &dedupLedger{appliedAt: map[string]string{}, appliedN: map[string]int{},
		skippedAt: map[string]bool{}, orderAt: map[string]string{}, committed: map[string]bool{}}
	kills := []string{"mid-batch", "before-commit", "applying", "mid-batch"}
	killed := 0
	for run := 0; len(ledger.committed) < total; run++ {
		killAt := ""
		if run < len(kills) {
			killAt = kills[run]
		}
		m := startDedupConsumer(t, addr, group, topic, db)
		appliedSinceCommit := 0
		for kill := false; !kill && len(ledger.committed) < total; {
			var line string
			select {
			case l, ok := <-m.lines:
				if !ok {
					t.Fatalf("run %d: consumer exited (%v)", run, m.cmd.Wait())
				}
				line = l
			case <-ctx.Done():
				t.Fatalf("run %d: %d of %d records committed before the deadline", run, len(ledger.committed), total)
			}
			point, applied := ledger.read(t, line)
			switch {
			case applied:
				appliedSinceCommit++
				kill = killAt == "applying" // it goes on applying the poll while the signal is on its way
			case strings.HasPrefix(line, "committed"):
				appliedSinceCommit = 0
			case point != "":
				if point == killAt && appliedSinceCommit > 0 {
					kill = true
				} else {
					m.resume()
				}
			}
		}
		// SIGKILL, then read what it printed up to its death before
		// reaping it (Wait closes the pipe). Once every record is
		// committed the last consumer is stopped the same way.
		m.cmd.Process.Signal(syscall.SIGKILL)
		for line := range m.lines {
			ledger.read(t, line)
		}
		m.kill()
		ledger.batch = nil // never committed
		if killAt != "" {
			killed++
		}
	}

	store, err := dedup.Open(db, dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	counts := map[string]uint64{}
	store.DB().View(func(tx *bolt.Tx) error {
		b := tx.Bucket(appliedBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			counts[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	for i := range orders {
		if c := counts[orderID(i)]; c != 1 {
			t.Errorf("%s applied %d times, want 1", orderID(i), c)
		}
	}
	if len(counts) != orders {
		t.Errorf("%d orders applied, want %d", len(counts), orders)
	}
	for order, n := range ledger.appliedN {
		if n > 1 {
			t.Errorf("%s reported applied %d times", order, n)
		}
	}
	if killed != len(kills) {
		t.Errorf("consumer killed %d times, want %d", killed, len(kills))
	}
	if ledger.redelivered == 0 {
		t.Error("no applied record was redelivered: the kills did not land between applying and committing")
	}
	if len(ledger.orderAt) != total {
		t.Errorf("consumers reported %d records, want %d", len(ledger.orderAt), total)
	}
	places := map[string]int{} // order -> records that carried it
	for _, order := range ledger.orderAt {
		places[order]++
	}
	for _, i := range duplicated {
		if places[orderID(i)] != 2 {
			t.Errorf("%s delivered at %d places, want 2 (the upstream duplicate)", orderID(i), places[orderID(i)])
		}
	}
	t.Logf("%d records (%d upstream duplicates), %d orders applied once each after %d SIGKILLs; %d applied records redelivered and skipped",
		total, len(duplicated), orders, killed, ledger.redelivered)
}
