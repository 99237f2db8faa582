package partition

// read_committed against purges: batches straddling the log start,
// concurrent DeleteRecords, retention and compaction, and recovery.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// readCommittedByBase filters batches as franz-go (kgo aborter.shouldAbortBatch)
// and librdkafka (rd_kafka_msgset_reader_msgs_v2: BaseOffset >= txn start)
// do: a transactional batch of a producer with an aborted transaction in
// the list is dropped when its *base* offset is at or past the aborted
// transaction's first offset; an ABORT marker pops the producer's first
// aborted transaction. Records below from are dropped.
func readCommittedByBase(t *testing.T, data []byte, from int64, aborted []abortedTxn) []string {
	t.Helper()
	sort.Slice(aborted, func(i, j int) bool { return aborted[i].first < aborted[j].first })
	byPID := map[int64][]int64{}
	for _, a := range aborted {
		byPID[a.pid] = append(byPID[a.pid], a.first)
	}
	var out []string
	for len(data) > 0 {
		h, err := batch.ParseHeader(data)
		if err != nil {
			t.Fatal(err)
		}
		raw := data[:h.Size()]
		data = data[h.Size():]
		if h.Control() {
			commit, err := batch.IsCommitMarker(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !commit && len(byPID[h.ProducerID]) > 0 {
				byPID[h.ProducerID] = byPID[h.ProducerID][1:]
			}
			continue
		}
		if h.Transactional() {
			if f := byPID[h.ProducerID]; len(f) > 0 && h.BaseOffset >= f[0] {
				continue
			}
		}
		recs, err := batch.Records(raw)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if h.BaseOffset+int64(i) >= from {
				out = append(out, string(r.Value))
			}
		}
	}
	return out
}

// DeleteRecords to an offset inside a batch of an open transaction
// raises the transaction's first offset to the new log start
// (State.TruncateHead), above the base offset of the batch that holds
// it. When the transaction aborts, the aborted list handed to
// read_committed fetches names that raised first offset, while the
// fetch returns the whole batch from its base: clients that compare the
// batch's base offset (franz-go, librdkafka) deliver the aborted records.
func TestAbortedBatchStraddlingTheLogStartIsFiltered(t *testing.T) {
	fs := logtest.NewMemFS()
	p := advOpen(t, fs, Options{ManualFlush: true})
	defer p.Close()
	advAppend(t, p, plain, "p0", "p1", "p2")                          // 0..2
	advAppend(t, p, txnSpec(7, 0), "ab3", "ab4", "ab5", "ab6", "ab7") // 3..7, open
	advSync(t, p)                                                     // HW 8
	if _, err := p.DeleteRecordsBefore(5); err != nil {               // inside 7's batch
		t.Fatal(err)
	}
	if _, err := p.AppendMarker(7, 0, false, 0); err != nil { // 8: ABORT
		t.Fatal(err)
	}
	advAppend(t, p, plain, "p9") // 9
	advSync(t, p)
	lso := p.LastStableOffset()
	data, ab, err := p.ReadCommittedInto(nil, 5, lso, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var aborted []abortedTxn
	for _, a := range ab {
		aborted = append(aborted, abortedTxn{a.ProducerID, a.FirstOffset})
	}
	var bases []string
	for rest := data; len(rest) > 0; {
		h, _ := batch.ParseHeader(rest)
		bases = append(bases, fmt.Sprintf("[%d..%d pid %d]", h.BaseOffset, h.LastOffset(), h.ProducerID))
		rest = rest[h.Size():]
	}
	got := readCommittedByBase(t, data, 5, aborted)
	for _, v := range got {
		if v[:2] == "ab" {
			t.Fatalf("read_committed at 5 (log start 5, LSO %d): batches %v, aborted list %+v; "+
				"a client filtering by batch base offset (franz-go, librdkafka) delivers %v: aborted records of producer 7",
				lso, bases, aborted, got)
		}
	}
}

// Three transactional producers (single-record batches, so DeleteRecords
// never lands inside a batch), a plain producer, the running flusher
// with a snapshot every round, DeleteRecords, retention and compaction
// all at once; read_committed readers follow the log with
// ReadCommittedInto and check every answer: start <= LSO <= HW <= LEO,
// the LSO never moves back (across readers), no record of an aborted
// transaction passes either client filter (by base or last offset), a
// transactional record is only returned once its producer's marker is
// below the HW, and OFFSET_OUT_OF_RANGE only below the log start.
func TestConcurrentReadCommittedWithPurgesAndCompaction(t *testing.T) {
	fs := logtest.NewMemFS()
	cfg := wlog.DefaultConfig()
	cfg.FS = fs
	cfg.SegmentBytes = 600
	cfg.RetentionBytes = 6000
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := OpenWith("t", 0, "/t", cfg, 0, []int32{0}, Options{SnapshotIntervalBytes: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	stop := make(chan struct{})
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, pid := range []int64{10, 11, 12} {
		var seq int32
		run(func(i int) error {
			commit := (i+int(pid))%3 != 0
			outcome := map[bool]string{true: "C", false: "A"}[commit]
			n := 1 + i%3
			var last int64
			for j := range n {
				v := fmt.Sprintf("%d-%d-%d-%s", pid, i, j, outcome)
				b := batch.Build(txnSpec(pid, seq), []batch.Record{{Key: []byte(fmt.Sprint("k", (i+j)%4)), Value: []byte(v)}})
				h, _ := batch.Validate(b)
				base, _, err := p.Append(b, h, 0)
				if err != nil {
					return err
				}
				seq++
				last = base + 1
			}
			if err := <-p.WaitDurable(last); err != nil {
				return err
			}
			end, err := p.AppendMarker(pid, 0, commit, 0)
			if err != nil {
				return err
			}
			return <-p.WaitDurable(end)
		})
	}
	run(func(i int) error {
		b := batch.Build(plain, []batch.Record{{Key: []byte(fmt.Sprint("k", i%4)), Value: []byte(fmt.Sprint("plain-", i))}})
		h, _ := batch.Validate(b)
		base, _, err := p.Append(b, h, 0)
		if err != nil {
			return err
		}
		return <-p.WaitDurable(base + 1)
	})
	run(func(i int) error {
		time.Sleep(time.Millisecond)
		switch i % 3 {
		case 0:
			start, hw := p.LogStartOffset(), p.HighWatermark()
			_, err := p.DeleteRecordsBefore(start + (hw-start)/4)
			return err
		case 1:
			_, err := p.EnforceRetention()
			return err
		default:
			_, err := p.Compact(time.Now(), 0)
			return err
		}
	})
	var maxLSO atomic.Int64
	var reads, records, oor atomic.Int64
	for range 2 {
		pos := int64(0)
		run(func(int) error {
			start := p.LogStartOffset()
			seen := maxLSO.Load()
			lso := p.LastStableOffset()
			hw := p.HighWatermark()
			leo := p.LogEndOffset()
			if lso < seen {
				return fmt.Errorf("LSO moved back from %d to %d", seen, lso)
			}
			for m := maxLSO.Load(); lso > m && !maxLSO.CompareAndSwap(m, lso); m = maxLSO.Load() {
			}
			if start > lso || lso > hw || hw > leo {
				return fmt.Errorf("start %d, LSO %d, HW %d, LEO %d out of order", start, lso, hw, leo)
			}
			if pos < start {
				pos = start
			}
			data, ab, err := p.ReadCommittedInto(nil, pos, lso, 4096)
			reads.Add(1)
			if errors.Is(err, wlog.ErrOffsetOutOfRange) {
				oor.Add(1)
				if now := p.LogStartOffset(); now <= pos {
					return fmt.Errorf("OFFSET_OUT_OF_RANGE at %d with the log start at %d (LSO %d, HW %d)", pos, now, lso, hw)
				}
				return nil
			}
			if err != nil {
				return err
			}
			hwAfter := p.HighWatermark()
			var aborted []abortedTxn
			for _, a := range ab {
				aborted = append(aborted, abortedTxn{a.ProducerID, a.FirstOffset})
			}
			for _, vs := range [][]string{readCommittedValues(t, data, pos, slices.Clone(aborted)), readCommittedByBase(t, data, pos, slices.Clone(aborted))} {
				for _, v := range vs {
					records.Add(1)
					if strings.HasSuffix(v, "-A") {
						return fmt.Errorf("read_committed [%d, %d) returned aborted %q (aborted list %v)", pos, lso, v, aborted)
					}
				}
			}
			// Every transactional batch returned has its marker below the HW.
			for d := data; len(d) > 0; {
				h, _ := batch.ParseHeader(d)
				d = d[h.Size():]
				if !h.Transactional() || h.Control() || h.NextOffset() <= pos {
					continue
				}
				rest, err := p.Read(h.NextOffset(), hwAfter, 1<<20)
				if errors.Is(err, wlog.ErrOffsetOutOfRange) {
					continue // purged meanwhile
				}
				if err != nil {
					return err
				}
				found := false
				for len(rest) > 0 && !found {
					m, _ := batch.ParseHeader(rest)
					found = m.Control() && m.ProducerID == h.ProducerID
					rest = rest[m.Size():]
				}
				if !found && h.NextOffset() < hwAfter {
					return fmt.Errorf("read_committed [%d, %d) returned producer %d's batch at %d with no marker below the HW %d", pos, lso, h.ProducerID, h.BaseOffset, hwAfter)
				}
			}
			for d := data; len(d) > 0; {
				h, _ := batch.ParseHeader(d)
				pos = max(pos, h.NextOffset())
				d = d[h.Size():]
			}
			return nil
		})
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d reads (%d OFFSET_OUT_OF_RANGE), %d records checked; log start %d, LSO %d, HW %d, LEO %d",
		reads.Load(), oor.Load(), records.Load(), p.LogStartOffset(), p.LastStableOffset(), p.HighWatermark(), p.LogEndOffset())
}

// The same scenario seen through recovery: the aborted list a restart
// rebuilds from the snapshot DeleteRecords wrote (first offset 5) differs
// from the one a replay of the log from its start yields (the batch that
// holds the log start begins at 3).
func TestStraddlingAbortRecoveredEqualsReplay(t *testing.T) {
	fs := logtest.NewMemFS()
	p := advOpen(t, fs, Options{ManualFlush: true})
	advAppend(t, p, plain, "p0", "p1", "p2")
	advAppend(t, p, txnSpec(7, 0), "ab3", "ab4", "ab5", "ab6", "ab7")
	advSync(t, p)
	if _, err := p.DeleteRecordsBefore(5); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendMarker(7, 0, false, 0); err != nil {
		t.Fatal(err)
	}
	advSync(t, p)
	live := abortedOf(p, 5, p.HighWatermark())
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q := advOpen(t, fs, Options{ManualFlush: true})
	recovered := abortedOf(q, 5, q.HighWatermark())
	q.Close()
	c := fs.Clone()
	for _, name := range c.List("/t", ".snapshot") {
		if err := c.Remove("/t/" + name); err != nil {
			t.Fatal(err)
		}
	}
	r := advOpen(t, c, Options{ManualFlush: true})
	defer r.Close()
	replay := abortedOf(r, 5, r.HighWatermark())
	t.Logf("aborted list: live %v, recovered from the snapshot %v, replayed from the log %v", live, recovered, replay)
	if fmt.Sprint(recovered) != fmt.Sprint(replay) {
		t.Fatalf("aborted transactions recovered from the snapshot %v differ from a replay of the log %v", recovered, replay)
	}
}
