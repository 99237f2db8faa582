package dedup

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openStore(t *testing.T, path string, opts Options) *BoltStore {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestProcessRunsEachKeyOnce(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{})
	runs := 0
	for i := range 3 {
		ran, err := s.Process("order-1", func() error { runs++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if ran != (i == 0) {
			t.Errorf("call %d: ran=%v", i, ran)
		}
	}
	if runs != 1 {
		t.Errorf("handler ran %d times, want 1", runs)
	}
}

func TestProcessRecordsKeyOnlyAfterSuccess(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{})
	boom := errors.New("boom")
	ran, err := s.Process("order-1", func() error { return boom })
	if !ran || !errors.Is(err, boom) {
		t.Fatalf("failing handler: ran=%v err=%v", ran, err)
	}
	if seen, _ := s.Seen("order-1"); seen {
		t.Fatal("key recorded although the handler failed")
	}
	ran, err = s.Process("order-1", func() error { return nil })
	if !ran || err != nil {
		t.Fatalf("retry after failure: ran=%v err=%v", ran, err)
	}
	if seen, _ := s.Seen("order-1"); !seen {
		t.Fatal("key not recorded after success")
	}
}

func TestProcessTxCommitsEffectAndKeyTogether(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{})
	effects := []byte("effects")
	apply := func(fail error) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(effects)
			if err != nil {
				return err
			}
			if err := b.Put([]byte("order-1"), []byte("applied")); err != nil {
				return err
			}
			return fail
		}
	}
	boom := errors.New("boom")
	if ran, err := s.ProcessTx("order-1", apply(boom)); !ran || !errors.Is(err, boom) {
		t.Fatalf("failing handler: ran=%v err=%v", ran, err)
	}
	effect := func() (v []byte) {
		s.DB().View(func(tx *bolt.Tx) error {
			if b := tx.Bucket(effects); b != nil {
				v = b.Get([]byte("order-1"))
			}
			return nil
		})
		return v
	}
	if v := effect(); v != nil {
		t.Errorf("effect %q stored although the handler failed", v)
	}
	if seen, _ := s.Seen("order-1"); seen {
		t.Error("key stored although the handler failed")
	}
	if ran, err := s.ProcessTx("order-1", apply(nil)); !ran || err != nil {
		t.Fatalf("retry: ran=%v err=%v", ran, err)
	}
	if v := effect(); string(v) != "applied" {
		t.Errorf("effect = %q after success", v)
	}
	if ran, err := s.ProcessTx("order-1", func(*bolt.Tx) error { t.Error("ran a recorded key"); return nil }); ran || err != nil {
		t.Errorf("duplicate: ran=%v err=%v", ran, err)
	}
}

func TestPurgeForgetsKeysOlderThanTTL(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{TTL: time.Hour, Now: func() time.Time { return now }})
	s.MarkProcessed("old")
	now = now.Add(30 * time.Minute)
	s.MarkProcessed("newer")
	now = now.Add(31 * time.Minute) // "old" is 61 minutes old, "newer" 31

	n, err := s.Purge(now)
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1 key", n, err)
	}
	if seen, _ := s.Seen("old"); seen {
		t.Error("key older than the TTL survived the purge")
	}
	if seen, _ := s.Seen("newer"); !seen {
		t.Error("key younger than the TTL was purged")
	}
	// A duplicate of a purged key is processed as new.
	if ran, err := s.Process("old", func() error { return nil }); !ran || err != nil {
		t.Errorf("purged key: ran=%v err=%v", ran, err)
	}
}

func TestPurgeUsesTheLatestRecord(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{TTL: time.Hour, Now: func() time.Time { return now }})
	s.MarkProcessed("k")
	now = now.Add(50 * time.Minute)
	s.MarkProcessed("k") // recorded again: its age starts over
	now = now.Add(20 * time.Minute)
	if n, err := s.Purge(now); n != 0 || err != nil {
		t.Fatalf("Purge = %d, %v; want nothing", n, err)
	}
	if n, err := s.Purge(now.Add(time.Hour)); n != 1 || err != nil {
		t.Fatalf("Purge = %d, %v; want 1 key", n, err)
	}
}

func TestPurgeDeletesMoreThanOneBatch(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{TTL: time.Minute, Now: func() time.Time { return now }})
	want := purgeBatch + 7
	err := s.DB().Update(func(tx *bolt.Tx) error {
		for i := range want {
			if err := s.record(tx, "k"+strconv.Itoa(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Purge(now.Add(time.Hour)); n != want || err != nil {
		t.Fatalf("Purge = %d, %v; want %d", n, err, want)
	}
}

func TestKeysSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Process("order-1", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, Options{})
	if ran, err := s.Process("order-1", func() error { return nil }); ran || err != nil {
		t.Errorf("after reopen: ran=%v err=%v; want the key remembered", ran, err)
	}
}

func TestProcessSerialisesOneKey(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{})
	const callers = 8
	runs := make(chan struct{}, callers)
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := s.Process("order-1", func() error { runs <- struct{}{}; return nil })
			errs <- err
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(runs) != 1 {
		t.Errorf("handler ran %d times for one key, want 1", len(runs))
	}
}

func TestKeysAreValidated(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "d.db"), Options{})
	long := string(make([]byte, MaxKeyBytes+1))
	for _, c := range []struct {
		key  string
		want error
	}{{"", ErrNoKey}, {long, ErrKeyTooLong}} {
		if _, err := s.Process(c.key, func() error { t.Error("ran"); return nil }); !errors.Is(err, c.want) {
			t.Errorf("Process(len %d) = %v, want %v", len(c.key), err, c.want)
		}
		if _, err := s.ProcessTx(c.key, func(*bolt.Tx) error { t.Error("ran"); return nil }); !errors.Is(err, c.want) {
			t.Errorf("ProcessTx(len %d) = %v, want %v", len(c.key), err, c.want)
		}
	}
}
