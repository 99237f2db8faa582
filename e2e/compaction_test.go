package e2e

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// readToEnd consumes topic's single partition from the start up to the
// record before end, returning what it read by offset.
func readToEnd(t *testing.T, addr, topic string, end int64) map[int64]*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	ctx := testCtx(t)
	got := map[int64]*kgo.Record{}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d records of a log ending at %d: %v", len(got), end, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		for _, r := range fs.Records() {
			got[r.Offset] = r
			if r.Offset == end-1 {
				return got
			}
		}
	}
}

// The broker's cleaner compacts a topic with cleanup.policy=compact:
// clients then read the latest value of every key, and tombstones younger
// than delete.retention.ms, at the offsets they were written at.
func TestCleanerCompactsACompactedTopic(t *testing.T) {
	b, _ := startBroker(t, map[string]string{"log.cleaner.backoff.ms": "100"})
	adm := newAdmin(t, b.Addr())
	compact, segment := "compact", "1024"
	createTopic(t, adm, "table", 1, map[string]*string{"cleanup.policy": &compact, "segment.bytes": &segment})
	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("table"))
	type kv struct {
		key   string
		value []byte
	}
	var produced []kv
	for i := range 400 {
		r := kv{fmt.Sprintf("k%d", i%10), []byte(fmt.Sprintf("v%d", i))}
		if i%10 == 9 && i > 300 {
			r.value = nil // tombstones for k9 from here on
		}
		if err := cl.ProduceSync(testCtx(t), &kgo.Record{Key: []byte(r.key), Value: r.value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		produced = append(produced, r)
	}
	end := int64(len(produced))

	var got map[int64]*kgo.Record
	eventually(t, "the cleaner compacts the topic", func() bool {
		got = readToEnd(t, b.Addr(), "table", end)
		return len(got) < len(produced)/2
	})
	latest := map[string]int64{}
	for off, r := range produced {
		latest[r.key] = int64(off)
		if g, ok := got[int64(off)]; ok && (string(g.Key) != r.key || !bytes.Equal(g.Value, r.value) || (g.Value == nil) != (r.value == nil)) {
			t.Fatalf("offset %d holds %s=%q, was written as %s=%q", off, g.Key, g.Value, r.key, r.value)
		}
	}
	for key, off := range latest {
		if _, ok := got[off]; !ok {
			t.Errorf("latest record of %s (offset %d) is gone", key, off)
		}
	}
	if g := got[latest["k9"]]; g == nil || g.Value != nil {
		t.Errorf("the young tombstone of k9 is not at offset %d", latest["k9"])
	}
}

// The cleaner compacts a transactionally written compacted topic by each
// transaction's outcome: aborted records are removed and never remove the
// committed value before them, committed records supersede older values.
// Here every key's last committed value is followed by twenty aborted
// transactions; it must survive them.
func TestCleanerCompactsTransactionsByTheirOutcome(t *testing.T) {
	b, _ := startBroker(t, map[string]string{"log.cleaner.backoff.ms": "100"})
	adm := newAdmin(t, b.Addr())
	compact, segment := "compact", "1024"
	createTopic(t, adm, "txn-table", 1, map[string]*string{"cleanup.policy": &compact, "segment.bytes": &segment})
	ctx := testCtx(t)
	producer := newClient(t, b.Addr(), kgo.DefaultProduceTopic("txn-table"), kgo.TransactionalID("table-writer"))
	const keys = 5
	lastCommitted := map[string]string{}
	written := 0
	for txn := range 60 {
		commit := txn < 40 && txn%2 == 0
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for k := range keys {
			key, value := fmt.Sprintf("k%d", k), fmt.Sprintf("x%d", txn)
			if commit {
				value = fmt.Sprintf("c%d", txn)
				lastCommitted[key] = value
			}
			if err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: []byte(value)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			written++
		}
		if err := producer.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	// Plain records after the transactions seal their segments.
	plain := newClient(t, b.Addr(), kgo.DefaultProduceTopic("txn-table"))
	for i := range 40 {
		if err := plain.ProduceSync(ctx, &kgo.Record{Key: []byte("filler"), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	end, err := adm.ListEndOffsets(ctx, "txn-table")
	if err != nil {
		t.Fatal(err)
	}
	hw, _ := end.Lookup("txn-table", 0)

	// read_uncommitted shows what the log holds, aborted records included.
	eventually(t, "the cleaner removes the aborted records", func() bool {
		for _, r := range readToEnd(t, b.Addr(), "txn-table", hw.Offset) {
			if bytes.HasPrefix(r.Value, []byte("x")) {
				return false
			}
		}
		return true
	})
	got := map[string][]string{}
	for _, r := range readToEnd(t, b.Addr(), "txn-table", hw.Offset) {
		if string(r.Key) != "filler" {
			got[string(r.Key)] = append(got[string(r.Key)], string(r.Value))
		}
	}
	for key, want := range lastCommitted {
		if vs := got[key]; len(vs) != 1 || vs[0] != want {
			t.Errorf("key %s holds %v after compaction, want only its last committed value %s", key, vs, want)
		}
	}
}
