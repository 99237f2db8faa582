package dedup

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Missing functions are bad input: they get an error, never a panic, and
// nothing is recorded.
func TestNilFunctionsAreRefused(t *testing.T) {
	ctx := testCtx(t)
	s := newPGStore(t, newPool(t, newDatabase(t)), PGOptions{})
	rec := &kgo.Record{Topic: "orders", Partition: 0, Offset: 7, Key: []byte("k")}
	fn := func(pgx.Tx, *kgo.Record) error { return nil }
	calls := map[string]func() error{
		"ProcessRecordTx nil KeyFunc": func() error {
			_, err := s.ProcessRecordTx(ctx, "g", nil, rec, fn)
			return err
		},
		"ProcessRecordTx nil handler": func() error {
			_, err := s.ProcessRecordTx(ctx, "g", KeyFromRecordKey(), rec, nil)
			return err
		},
		"ProcessTx nil handler": func() error {
			_, err := s.ProcessTx(ctx, "k2", nil)
			return err
		},
		"Process nil handler": func() error {
			_, err := s.Process("k3", nil)
			return err
		},
	}
	for name, call := range calls {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%s: panic %v", name, p)
				}
			}()
			if err := call(); err == nil {
				t.Errorf("%s: no error", name)
			}
		}()
	}
	for _, k := range []string{"k", "k2", "k3"} {
		if seen, err := s.Seen(k); seen || err != nil {
			t.Errorf("key %s recorded (%v, %v) by a refused call", k, seen, err)
		}
	}
	if off, err := s.Offsets(ctx, "g"); err != nil || len(off) != 0 {
		t.Errorf("offsets %v, %v stored by a refused call", off, err)
	}
}
