package txn

// Tests of the KIP-360 retry path: the producer that asked
// for an epoch bump, and only it, gets the bumped pair when it retries.

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// A KIP-360 epoch bump asked by a producer whose transaction is open
// first aborts that transaction at a fencing epoch, then bumps again. If
// the request fails part way (its marker write fails; the client sees a
// retriable COORDINATOR_NOT_AVAILABLE) the producer retries the very same
// request, presenting the same pair: nobody else ever held the epoch the
// abort moved to, so the retry must not be PRODUCER_FENCED (fatal).
func TestKIP360RetryAfterFailedAbortIsNotFenced(t *testing.T) {
	c := newHarness(t, Config{MaxTimeoutMs: 60000, IDExpirationMs: 1 << 40})
	pid, epoch, err := c.InitProducerID("a", 10000, -1, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	c.failMarkers = 1
	if _, _, err := c.InitProducerID("a", 10000, pid, epoch, 2); err == nil {
		t.Fatal("bump with failing markers succeeded")
	} else {
		t.Logf("first attempt: %v", err)
	}
	gotPID, got, err := c.InitProducerID("a", 10000, pid, epoch, 3)
	if err != nil {
		t.Fatalf("retry of the bump by the producer that asked it (%d/%d): %v; want the bumped pair", pid, epoch, err)
	}
	if gotPID != pid || got <= epoch {
		t.Fatalf("retry: %d/%d", gotPID, got)
	}
}

// The same when the coordinator dies after the abort is complete and
// before the bump is durable (the answer is lost with the coordinator):
// at restart, the retry presenting the same pair must get a bumped pair.
func TestKIP360RetryAfterCrashBetweenAbortAndBump(t *testing.T) {
	c := newHarness(t, Config{MaxTimeoutMs: 60000, IDExpirationMs: 1 << 40})
	pid, epoch, err := c.InitProducerID("a", 10000, -1, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 1); err != nil {
		t.Fatal(err)
	}
	// PrepareAbort, CompleteAbort are durable; the bump's put is not
	// (the process dies there: the put never reaches the log).
	n := len(c.puts)
	_, _, _ = c.InitProducerID("a", 10000, pid, epoch, 2)
	if len(c.puts) != n+3 {
		t.Fatalf("expected 3 puts (PrepareAbort, CompleteAbort, bump), got %d", len(c.puts)-n)
	}
	c.puts = c.puts[:len(c.puts)-1] // the crash takes the last put

	c2 := c.restart(t)
	gotPID, got, err := c2.InitProducerID("a", 10000, pid, epoch, 3)
	if err != nil {
		t.Fatalf("after a restart, retry of the bump by the producer that asked it (%d/%d): %v; want the bumped pair", pid, epoch, err)
	}
	if gotPID != pid || got <= epoch {
		t.Fatalf("retry: %d/%d", gotPID, got)
	}
}

// Zombie checks that must hold: an instance fenced by a newer instance,
// by a timeout abort, or two bumps behind never gets a pair back through
// the retry path, also after a restart and across a producer id rollover.
func TestZombieNeverUsesTheRetryPath(t *testing.T) {
	type step func(c *harness, pid int64, epoch int16) (int64, int16)
	newInstance := func(c *harness, _ int64, _ int16) (int64, int16) {
		p, e, err := c.InitProducerID("a", 10000, -1, -1, 10)
		if err != nil {
			t.Fatal(err)
		}
		return p, e
	}
	for _, tc := range []struct {
		name  string
		start int16
		fence step
	}{
		{"new-instance", 0, newInstance},
		{"new-instance-at-exhaustion", 1<<15 - 3, newInstance},
		{"timeout-abort", 0, func(c *harness, pid int64, epoch int16) (int64, int16) {
			if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 20); err != nil {
				t.Fatal(err)
			}
			if errs := c.Tick(1 << 30); len(errs) != 0 {
				t.Fatal(errs)
			}
			m := c.Describe([]string{"a"})["a"]
			return m.ProducerID, m.ProducerEpoch
		}},
		{"timeout-abort-at-exhaustion", 1<<15 - 2, func(c *harness, pid int64, epoch int16) (int64, int16) {
			if err := c.AddPartitions("a", pid, epoch, []TopicPartition{tp}, nil, 20); err != nil {
				t.Fatal(err)
			}
			if errs := c.Tick(1 << 30); len(errs) != 0 {
				t.Fatal(errs)
			}
			m := c.Describe([]string{"a"})["a"]
			return m.ProducerID, m.ProducerEpoch
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newHarness(t, Config{MaxTimeoutMs: 60000, IDExpirationMs: 1 << 40})
			c.nextPID = 100
			c.Replay("a", &Meta{TransactionalID: "a", ProducerID: 7, ProducerEpoch: tc.start, TimeoutMs: 10000, Status: CompleteCommit, StartMs: -1})
			// The zombie-to-be bumps itself once (KIP-360), so a Last exists.
			zp, ze, err := c.InitProducerID("a", 10000, 7, tc.start, 1)
			if err != nil {
				t.Fatal(err)
			}
			fp, fe := tc.fence(c, zp, ze)
			for _, cc := range []*harness{c, c.restart(t)} {
				for _, pair := range [][2]int64{{7, int64(tc.start)}, {zp, int64(ze)}} {
					p, e, err := cc.InitProducerID("a", 10000, pair[0], int16(pair[1]), 30)
					if err == nil {
						t.Fatalf("zombie %d/%d got %d/%d (fenced at %d/%d)", pair[0], pair[1], p, e, fp, fe)
					}
					if !errors.Is(err, kerr.ProducerFenced) {
						t.Fatalf("zombie %d/%d: %v, want PRODUCER_FENCED", pair[0], pair[1], err)
					}
				}
				if err := cc.AddPartitions("a", zp, ze, []TopicPartition{tp}, nil, 31); err == nil {
					t.Fatal("zombie added a partition")
				}
				if err := cc.InTransaction(zp, ze, tp); err == nil {
					t.Fatal("zombie verified a write")
				}
			}
		})
	}
}
