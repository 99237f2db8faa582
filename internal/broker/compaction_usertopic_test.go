package broker_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The same on a user topic with cleanup.policy=compact: an open
// transaction's record of key k, then a plain tombstone of k past the
// LSO; the cleaner leaves everything past the LSO alone, so once the
// transaction commits a read_committed consumer reading from the start
// still ends with k deleted.
func TestCompactionStopsAtTheLSOSoADeletedKeyStaysDeleted(t *testing.T) {
	resurrectCase(t, "true", true)
}

// With the default delete.retention.ms (24 h): the tombstone carries a
// CreateTime two days old, which the cleaner takes as its age.
func TestCompactionStopsAtTheLSOWithDefaultRetentionAndAnOldTombstone(t *testing.T) {
	resurrectCase(t, "true", false)
}

// Without the cleaner the consumer ends with k deleted too.
func TestDeletedKeyStaysDeletedWithoutTheCleaner(t *testing.T) { resurrectCase(t, "false", true) }

func resurrectCase(t *testing.T, cleaner string, zeroRetention bool) {
	dir := t.TempDir()
	a, err := openAdvBroker(t, dir, map[string]string{"log.cleaner.backoff.ms": "20", "log.cleaner.enable": cleaner})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := newClient(t, a.addr)
	adm := kadm.NewClient(cl)
	compact, seg, zero := "compact", "200", "0"
	cfgs := map[string]*string{"cleanup.policy": &compact, "segment.bytes": &seg}
	var ts time.Time
	if zeroRetention {
		cfgs["delete.retention.ms"] = &zero
	} else {
		ts = time.Now().Add(-48 * time.Hour)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, cfgs, "kv"); err != nil {
		t.Fatal(err)
	}
	txp := newClient(t, a.addr, kgo.DefaultProduceTopic("kv"), kgo.TransactionalID("w"))
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	plain := newClient(t, a.addr, kgo.DefaultProduceTopic("kv"))
	if err := plain.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: nil, Timestamp: ts}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	for i := range 20 {
		if err := plain.ProduceSync(ctx, &kgo.Record{Key: []byte("filler"), Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // cleaner passes while the transaction is open
	if err := txp.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	end, err := adm.ListEndOffsets(ctx, "kv")
	if err != nil {
		t.Fatal(err)
	}
	hw, _ := end.Lookup("kv", 0)
	cons := newClient(t, a.addr, kgo.ConsumeTopics("kv"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	state := map[string]string{}
	var seen []string
	deadline := time.Now().Add(10 * time.Second)
	last := int64(-1)
	for last < hw.Offset-2 && time.Now().Before(deadline) { // the last offset is the marker
		fs := cons.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			last = r.Offset
			if string(r.Key) != "k" {
				return
			}
			if r.Value == nil {
				delete(state, "k")
				seen = append(seen, "null@"+itoa(r.Offset))
			} else {
				state["k"] = string(r.Value)
				seen = append(seen, string(r.Value)+"@"+itoa(r.Offset))
			}
		})
	}
	t.Logf("read_committed records of k: %v; final state %v (HW %d)", seen, state, hw.Offset)
	if v, ok := state["k"]; ok {
		t.Fatalf("key k was deleted (tombstone after its value) but a read_committed consumer ends with k=%q: %v", v, seen)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
