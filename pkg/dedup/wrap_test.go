package dedup

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	bolt "go.etcd.io/bbolt"
)

func orderRecord(offset int64, orderID string) *kgo.Record {
	r := &kgo.Record{Topic: "orders", Partition: 2, Offset: offset, Key: []byte("k" + orderID)}
	if orderID != "" {
		r.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte("x")}, {Key: "order-id", Value: []byte(orderID)}}
	}
	return r
}

func TestKeyFuncs(t *testing.T) {
	r := orderRecord(41, "o-7")
	for _, c := range []struct {
		name string
		fn   KeyFunc
		want string
	}{
		{"header", KeyFromHeader("order-id"), "o-7"},
		{"record key", KeyFromRecordKey(), "ko-7"},
		{"offset", KeyFromOffset(), "orders/2/41"},
	} {
		got, err := c.fn(r)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	bare := &kgo.Record{Topic: "orders"}
	for name, fn := range map[string]KeyFunc{"header": KeyFromHeader("order-id"), "record key": KeyFromRecordKey()} {
		if _, err := fn(bare); !errors.Is(err, ErrNoKey) {
			t.Errorf("%s of a bare record: %v, want ErrNoKey", name, err)
		}
	}
	empty := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "order-id"}}}
	if _, err := KeyFromHeader("order-id")(empty); !errors.Is(err, ErrNoKey) {
		t.Errorf("empty header: %v, want ErrNoKey", err)
	}
}

func TestWrapSkipsDuplicatesAndRetriesFailures(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{})
	var handled []int64
	fail := true
	h := Wrap(s, KeyFromHeader("order-id"), func(r *kgo.Record) error {
		if r.Offset == 2 && fail {
			fail = false
			return errors.New("transient")
		}
		handled = append(handled, r.Offset)
		return nil
	})
	// Offset 1 duplicates order a (an upstream retry); offset 2 fails
	// once and is redelivered as offset 2 again.
	for i, r := range []*kgo.Record{orderRecord(0, "a"), orderRecord(1, "a"), orderRecord(2, "b"), orderRecord(2, "b"), orderRecord(3, "c")} {
		if err := h(r); (err != nil) != (i == 2) {
			t.Errorf("delivery %d (offset %d): err=%v", i, r.Offset, err)
		}
	}
	want := []int64{0, 2, 3}
	if len(handled) != len(want) {
		t.Fatalf("handled offsets %v, want %v", handled, want)
	}
	for i := range want {
		if handled[i] != want[i] {
			t.Fatalf("handled offsets %v, want %v", handled, want)
		}
	}
	if err := h(orderRecord(9, "")); !errors.Is(err, ErrNoKey) {
		t.Errorf("record without key: %v, want ErrNoKey", err)
	}
}

func TestWrapTxAppliesEachOrderOnce(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{})
	stock := []byte("stock")
	h := WrapTx(s, KeyFromHeader("order-id"), func(tx *bolt.Tx, r *kgo.Record) error {
		b, err := tx.CreateBucketIfNotExists(stock)
		if err != nil {
			return err
		}
		n := 0
		if v := b.Get([]byte("widget")); v != nil {
			n = int(v[0])
		}
		return b.Put([]byte("widget"), []byte{byte(n + 1)})
	})
	for _, r := range []*kgo.Record{orderRecord(0, "a"), orderRecord(1, "b"), orderRecord(0, "a"), orderRecord(2, "a")} {
		if err := h(r); err != nil {
			t.Fatal(err)
		}
	}
	s.DB().View(func(tx *bolt.Tx) error {
		if got := tx.Bucket(stock).Get([]byte("widget"))[0]; got != 2 {
			t.Errorf("widget count %d, want 2 (orders a and b once each)", got)
		}
		return nil
	})
}
