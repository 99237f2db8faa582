package broker_test

// read_committed and committed group offsets against purges, compaction
// and restarts, on real brokers over TCP.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/broker"
	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/server"
	"github.com/weir-broker/weir/internal/txn"
)

// A read_committed franz-go consumer never receives records of an aborted
// transaction, also when DeleteRecords moved the log start into the middle
// of one of the transaction's batches while it was open.
func TestReadCommittedAfterDeleteRecordsInsideAnOpenTxnBatch(t *testing.T) {
	_, addr := serveBroker(t, map[string]string{"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"})
	ctx := testCtx(t)
	cl := newClient(t, addr)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	plainP := newClient(t, addr, kgo.DefaultProduceTopic("t"))
	for i := range 3 {
		if err := plainP.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint("plain-", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	tp := newClient(t, addr, kgo.TransactionalID("tx"), kgo.DefaultProduceTopic("t"), kgo.ManualFlushing())
	if err := tp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // one batch: offsets 3..7
		tp.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint("aborted-", i))}, nil)
	}
	if err := tp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: "t", Partition: 0, At: 5})
	if r, err := adm.DeleteRecords(ctx, del); err != nil || r.Error() != nil {
		t.Fatalf("DeleteRecords: %v %v", err, r.Error())
	}
	if err := tp.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if err := plainP.ProduceSync(ctx, &kgo.Record{Value: []byte("plain-after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, addr, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var got []string
	pollCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for pollCtx.Err() == nil {
		fs := c.PollFetches(pollCtx)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value)) })
		if len(got) > 0 && strings.HasSuffix(got[len(got)-1], "plain-after") {
			break
		}
	}
	for _, v := range got {
		if strings.Contains(v, "aborted") {
			t.Errorf("read_committed consumer (franz-go) after DeleteRecords(5) inside the open transaction's batch 3..7 and its abort received %v", got)
			break
		}
	}
	t.Logf("read_committed got %v", got)
	if kcat, err := exec.LookPath("kcat"); err == nil { // librdkafka
		out, err := exec.CommandContext(ctx, kcat, "-C", "-b", addr, "-t", "t", "-p", "0", "-o", "beginning", "-e", "-q",
			"-X", "isolation.level=read_committed", "-f", "%o:%s\n").CombinedOutput()
		if err != nil {
			t.Fatalf("kcat: %v: %s", err, out)
		}
		if strings.Contains(string(out), "aborted") {
			t.Errorf("read_committed consumer (librdkafka, kcat) received aborted records:\n%s", out)
		}
	}
}

// reviewTxnOffset adds group to id's transaction and writes a
// TxnOffsetCommit of topic-0 at off (generation -1).
func reviewTxnOffset(ctx context.Context, t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, group, topic string, off int64) {
	t.Helper()
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, group
	if r, err := add.RequestWith(ctx, cl); err != nil || r.ErrorCode != 0 {
		t.Fatal("AddOffsetsToTxn", err, r)
	}
	c := kmsg.NewPtrTxnOffsetCommitRequest()
	c.TransactionalID, c.Group, c.ProducerID, c.ProducerEpoch, c.Generation = id, group, pid, epoch, -1
	c.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: off, LeaderEpoch: -1}}}}
	if r, err := c.RequestWith(ctx, cl); err != nil || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal("TxnOffsetCommit", err, r)
	}
}

// reviewCommitted is the group's committed offset of topic-0 (OffsetFetch
// v8, require_stable), -1 for none.
func reviewCommitted(ctx context.Context, t *testing.T, addr, group, topic string) int64 {
	t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.RequireStable = 8, true
	r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{0}}}}}
	resp, err := r.RequestWith(ctx, newClient(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	g := resp.Groups[0]
	if g.ErrorCode != 0 {
		t.Fatalf("OffsetFetch: %v", kerr.ErrorForCode(g.ErrorCode))
	}
	p := g.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("OffsetFetch %s-0: %v", topic, kerr.ErrorForCode(p.ErrorCode))
	}
	return p.Offset
}

// reviewThreeViews runs scenario on a broker with the cleaner off, then
// reads the committed offset of group's t-0 live, after a restart, and
// after the cleaner compacted __consumer_offsets and another restart.
func reviewThreeViews(t *testing.T, extra map[string]string, group string, scenario func(ctx context.Context, cl *kgo.Client, adm *kadm.Client)) (live, restarted, compacted int64) {
	t.Helper()
	dir := t.TempDir()
	settings := map[string]string{"offsets.topic.segment.bytes": "200", "log.cleaner.enable": "false"}
	for k, v := range extra {
		settings[k] = v
	}
	a, err := openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := newClient(t, a.addr)
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"t", "u"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	scenario(ctx, cl, adm)
	live = reviewCommitted(ctx, t, a.addr, group, "t")
	// Plain commits of another group seal the segments that hold the
	// scenario's records, so the cleaner can compact them.
	for i := range 30 {
		more := kadm.Offsets{}
		more.Add(kadm.Offset{Topic: "u", Partition: 0, At: int64(i), LeaderEpoch: -1})
		if r, err := adm.CommitOffsets(ctx, "filler", more); err != nil || r.Error() != nil {
			t.Fatal(err, r.Error())
		}
	}
	a.close()
	a, err = openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	restarted = reviewCommitted(ctx, t, a.addr, group, "t")
	a.close()
	settings["log.cleaner.enable"], settings["log.cleaner.backoff.ms"] = "true", "20"
	a, err = openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // cleaner passes
	a.close()
	a, err = openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	compacted = reviewCommitted(ctx, t, a.addr, group, "t")
	return live, restarted, compacted
}

// Log order: OffsetCommit(t-0 = 1), TxnOffsetCommit(t-0 = 5), OffsetDelete
// tombstone of t-0, COMMIT marker. The record written last for t-0 is the
// tombstone: the group has no offset of t-0, live, after a restart and
// after compaction + restart alike.
func TestOffsetDeleteBetweenTxnOffsetCommitAndItsCommit(t *testing.T) {
	t.Run("only-t", func(t *testing.T) { reviewOffsetDeleteBetween(t, false) })
	// The group also has an offset of u-0, so a replay does not drop it
	// as unused when the tombstone of t-0 is read.
	t.Run("t-and-u", func(t *testing.T) { reviewOffsetDeleteBetween(t, true) })
}

func reviewOffsetDeleteBetween(t *testing.T, alsoU bool) {
	live, restarted, compacted := reviewThreeViews(t, nil, "g", func(ctx context.Context, cl *kgo.Client, adm *kadm.Client) {
		plain := kadm.Offsets{}
		plain.Add(kadm.Offset{Topic: "t", Partition: 0, At: 1, LeaderEpoch: -1})
		if alsoU {
			plain.Add(kadm.Offset{Topic: "u", Partition: 0, At: 1, LeaderEpoch: -1})
		}
		if r, err := adm.CommitOffsets(ctx, "g", plain); err != nil || r.Error() != nil {
			t.Fatal(err, r.Error())
		}
		pid, epoch := initProducer(ctx, t, cl, "tx")
		reviewTxnOffset(ctx, t, cl, "tx", pid, epoch, "g", "t", 5)
		ts := kadm.TopicsSet{}
		ts.Add("t", 0)
		r, err := adm.DeleteOffsets(ctx, "g", ts)
		if err != nil || r.Error() != nil {
			t.Fatal("OffsetDelete", err, r.Error())
		}
		if code := endTxn(ctx, t, cl, "tx", pid, epoch, true); code != 0 {
			t.Fatal(kerr.ErrorForCode(code))
		}
		if st, ok := waitTxnState(ctx, t, cl, "tx", string(txn.CompleteCommit), 10*time.Second); !ok {
			t.Fatal(st)
		}
	})
	t.Logf("t-0: live %d, after a restart %d, after compaction and a restart %d (last record written: the tombstone, -1)", live, restarted, compacted)
	if live != -1 || restarted != -1 || compacted != -1 {
		t.Fatalf("OffsetCommit 1, TxnOffsetCommit 5, OffsetDelete, COMMIT: committed offset of t-0 live %d, after a restart %d, "+
			"after compaction + restart %d; want -1 (the tombstone was written last) in all three", live, restarted, compacted)
	}
}

// Log order: TxnOffsetCommit(t-0 = 5) of an empty group, DeleteGroups
// (tombstones of the group's committed offsets, none, and of the group),
// COMMIT marker. Live and after a restart the group has no offset; once
// the cleaner drops the tombstones (delete.retention.ms 0) the
// transactional record is the only one left and a restart commits it.
func TestDeleteGroupsWithAPendingTxnOffsetCommit(t *testing.T) {
	live, restarted, compacted := reviewThreeViews(t, map[string]string{"log.cleaner.delete.retention.ms": "0"}, "g", func(ctx context.Context, cl *kgo.Client, adm *kadm.Client) {
		pid, epoch := initProducer(ctx, t, cl, "tx")
		reviewTxnOffset(ctx, t, cl, "tx", pid, epoch, "g", "t", 5)
		r, err := adm.DeleteGroups(ctx, "g")
		if err != nil || r.Error() != nil {
			t.Fatal("DeleteGroups", err, r.Error())
		}
		if code := endTxn(ctx, t, cl, "tx", pid, epoch, true); code != 0 {
			t.Fatal(kerr.ErrorForCode(code))
		}
		if st, ok := waitTxnState(ctx, t, cl, "tx", string(txn.CompleteCommit), 10*time.Second); !ok {
			t.Fatal(st)
		}
	})
	t.Logf("t-0: live %d, after a restart %d, after compaction and a restart %d", live, restarted, compacted)
	if live != restarted || restarted != compacted {
		t.Fatalf("TxnOffsetCommit 5, DeleteGroups, COMMIT: committed offset of t-0 live %d, after a restart %d, after compaction + restart %d; "+
			"the three must agree", live, restarted, compacted)
	}
}

// Invariant 4 (no regression): with a tenth of produce responses lost
// (kgo retries the batches), a transactional kgo producer committing and
// aborting and an idempotent kgo producer share a partition; neither is
// ever refused (INVALID_TXN_STATE or otherwise), and a read_committed
// consumer reads each committed record exactly once and nothing aborted.
func TestTxnAndIdempotentProducersWithLostResponses(t *testing.T) {
	in, err := faults.Parse("produce.response=drop@0.1", 7)
	if err != nil {
		t.Fatal(err)
	}
	s := config.NewBroker()
	for k, v := range map[string]string{"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"} {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{NodeID: int32(s.Int("node.id")), DataDir: t.TempDir(), Settings: s, Logger: logger, Faults: in})
	if err != nil {
		t.Fatal(err)
	}
	b.SetAdvertised("127.0.0.1", int32(ln.Addr().(*net.TCPAddr).Port))
	srv := server.New(ln, b, server.Limits{MaxFrameBytes: 100 << 20, MaxConnections: 100, MaxInflightReqs: 100}, logger, in)
	t.Cleanup(func() { srv.Close(); b.Close() })
	addr := ln.Addr().String()
	ctx := testCtx(t)
	if _, err := kadm.NewClient(newClient(t, addr)).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	committed := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p := newClient(t, addr, kgo.TransactionalID("tx"), kgo.DefaultProduceTopic("t"), kgo.RequestRetries(100))
		for n := range 15 {
			commit := n%3 != 0
			if err := p.BeginTransaction(); err != nil {
				t.Error(err)
				return
			}
			var vs []string
			for i := range 5 {
				v := fmt.Sprintf("txn-%d-%d-%v", n, i, commit)
				if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
					t.Errorf("transactional produce %s: %v", v, err)
					return
				}
				vs = append(vs, v)
			}
			if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
				t.Errorf("end %d: %v", n, err)
				return
			}
			if commit {
				mu.Lock()
				for _, v := range vs {
					committed[v] = true
				}
				mu.Unlock()
			}
		}
	}()
	go func() {
		defer wg.Done()
		p := newClient(t, addr, kgo.DefaultProduceTopic("t"), kgo.RequestRetries(100))
		for n := range 50 {
			v := fmt.Sprintf("idem-%d", n)
			if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Errorf("idempotent produce %s: %v", v, err)
				return
			}
			mu.Lock()
			committed[v] = true
			mu.Unlock()
		}
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	c := newClient(t, addr, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	seen := map[string]int{}
	pollCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for pollCtx.Err() == nil && len(seen) < len(committed) {
		c.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	for v, n := range seen {
		if !committed[v] || n != 1 {
			t.Errorf("read_committed read %q %d times (committed: %v)", v, n, committed[v])
		}
	}
	for v := range committed {
		if seen[v] == 0 {
			t.Errorf("committed %q never read", v)
		}
	}
	t.Logf("%d committed records, %d distinct read", len(committed), len(seen))
}

// Invariant 2 over TCP: transactional producers writing one record per
// batch (so DeleteRecords never lands inside a batch) commit and abort
// on a compacted topic with small segments, while DeleteRecords, the
// cleaner (every 20 ms, tombstones dropped at once) and retention (every
// 50 ms) run; franz-go read_committed consumers never receive an aborted
// record, and every OFFSET_OUT_OF_RANGE they get is below the log start.
func TestReadCommittedOverTCPWithPurgesAndCompaction(t *testing.T) {
	t.Run("one-record-batches", func(t *testing.T) { reviewReadCommittedOverTCP(t, false) })
	// The same with the transaction's three records in one batch: a
	// DeleteRecords offset can now fall inside an open transaction's batch.
	t.Run("three-record-batches", func(t *testing.T) { reviewReadCommittedOverTCP(t, true) })
}

func reviewReadCommittedOverTCP(t *testing.T, batched bool) {
	_, addr := serveBroker(t, map[string]string{
		"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1",
		"log.cleaner.backoff.ms": "20", "log.cleaner.delete.retention.ms": "0", "log.retention.check.interval.ms": "50",
	})
	ctx := testCtx(t)
	cl := newClient(t, addr)
	adm := kadm.NewClient(cl)
	cfg := map[string]*string{}
	for k, v := range map[string]string{"cleanup.policy": "compact,delete", "segment.bytes": "2000", "retention.bytes": "20000"} {
		cfg[k] = kmsg.StringPtr(v)
	}
	if r, err := adm.CreateTopic(ctx, 1, 1, cfg, "t"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	runCtx, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	aborted := map[string]bool{}
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := []kgo.Opt{kgo.TransactionalID(fmt.Sprintf("w%d", w)), kgo.DefaultProduceTopic("t")}
			if batched {
				opts = append(opts, kgo.ManualFlushing())
			}
			p := newClient(t, addr, opts...)
			for n := 0; runCtx.Err() == nil; n++ {
				commit := (n+w)%3 != 0
				if err := p.BeginTransaction(); err != nil {
					t.Error(err)
					return
				}
				for i := range 3 {
					v := fmt.Sprintf("w%d-%d-%d-%v", w, n, i, commit)
					if !commit {
						mu.Lock()
						aborted[v] = true
						mu.Unlock()
					}
					r := &kgo.Record{Key: []byte(fmt.Sprint("k", (n+i)%5)), Value: []byte(v)}
					if batched {
						p.Produce(ctx, r, nil)
						continue
					}
					if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
						t.Error(err)
						return
					}
				}
				if batched {
					if err := p.Flush(ctx); err != nil {
						t.Error(err)
						return
					}
				}
				if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // DeleteRecords to a random point between the log start and the HW
		defer wg.Done()
		for i := 0; runCtx.Err() == nil; i++ {
			time.Sleep(30 * time.Millisecond)
			starts, err := adm.ListStartOffsets(ctx, "t")
			if err != nil {
				continue
			}
			ends, err := adm.ListEndOffsets(ctx, "t")
			if err != nil {
				continue
			}
			s, _ := starts.Lookup("t", 0)
			e, _ := ends.Lookup("t", 0)
			if e.Offset <= s.Offset {
				continue
			}
			del := kadm.Offsets{}
			del.Add(kadm.Offset{Topic: "t", Partition: 0, At: s.Offset + int64(i*7)%(e.Offset-s.Offset)})
			adm.DeleteRecords(ctx, del)
		}
	}()
	var got, bad int64
	var smu sync.Mutex
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, addr, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(20*time.Millisecond))
			for runCtx.Err() == nil {
				fs := c.PollFetches(runCtx)
				fs.EachRecord(func(r *kgo.Record) {
					v := string(r.Value)
					mu.Lock()
					isAborted := aborted[v]
					mu.Unlock()
					smu.Lock()
					got++
					if isAborted || strings.HasSuffix(v, "false") {
						bad++
						if bad < 5 {
							t.Errorf("read_committed received aborted %q at %d", v, r.Offset)
						}
					}
					smu.Unlock()
				})
			}
		}()
	}
	wg.Wait()
	t.Logf("%d records read_committed, %d aborted among them; %d aborted written", got, bad, len(aborted))
}
