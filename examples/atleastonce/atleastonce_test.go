package atleastonce

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	bolt "go.etcd.io/bbolt"

	"github.com/weir-broker/weir/examples/internal/exampletest"
	"github.com/weir-broker/weir/pkg/dedup"
)

// A consumer that dies after processing records and before committing
// them makes its successor receive them again (at-least-once); the dedup
// store skips them, so each event's effect is applied exactly once.
func TestRedeliveredRecordsAreSkippedByTheDedupStore(t *testing.T) {
	addr := exampletest.Broker(t)
	const n = 100
	exampletest.Fill(t, addr, "payments", n)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	store, err := dedup.Open(filepath.Join(t.TempDir(), "dedup.db"), dedup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	calls := 0
	// The effect: a per-event counter in the store's own database.
	apply := func(tx *bolt.Tx, r *kgo.Record) error {
		calls++
		b, err := tx.CreateBucketIfNotExists([]byte("applied"))
		if err != nil {
			return err
		}
		k := r.Value
		var c uint64
		if v := b.Get(k); v != nil {
			c = binary.BigEndian.Uint64(v)
		}
		return b.Put(k, binary.BigEndian.AppendUint64(nil, c+1))
	}
	brokers := []string{addr}
	first, err := Consume(ctx, brokers, "g", "payments", store, apply, 30, n)
	if err != nil || first != 30 {
		t.Fatalf("first consumer: %d handled, %v", first, err)
	}
	// Nothing was committed: the successor gets all n again.
	second, err := Consume(ctx, brokers, "g", "payments", store, apply, 0, n)
	if err != nil || second != n {
		t.Fatalf("successor: %d handled, %v", second, err)
	}
	if calls != n {
		t.Fatalf("effect applied %d times for %d events; the 30 redelivered records should have been skipped", calls, n)
	}
	err = store.DB().View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("applied"))
		for i := range n {
			v := b.Get(fmt.Appendf(nil, "e%d", i))
			if v == nil || binary.BigEndian.Uint64(v) != 1 {
				return fmt.Errorf("event e%d applied %v times, want once", i, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
