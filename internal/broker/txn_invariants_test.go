package broker_test

// The transaction paths under the failures most likely to break them, on
// a real broker over TCP.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/broker"
	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/server"
	"github.com/weir-broker/weir/internal/txn"
)

// advBroker is a broker on a given directory, served on a local port.
type advBroker struct {
	b    *broker.Broker
	srv  *server.Server
	addr string
	once sync.Once
}

func (a *advBroker) close() {
	a.once.Do(func() {
		a.srv.Close()
		a.b.Close()
	})
}

// openAdvBroker opens a broker on dir with settings (plus one partition
// for each internal topic); it fails with Open's error if Open fails.
func openAdvBroker(t *testing.T, dir string, settings map[string]string) (*advBroker, error) {
	t.Helper()
	return openAdvBrokerWith(t, dir, settings, nil)
}

func openAdvBrokerWith(t *testing.T, dir string, settings map[string]string, in *faults.Injector) (*advBroker, error) {
	t.Helper()
	s := config.NewBroker()
	all := map[string]string{"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"}
	for k, v := range settings {
		all[k] = v
	}
	for k, v := range all {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{NodeID: int32(s.Int("node.id")), DataDir: dir, Settings: s, Logger: logger, Faults: in})
	if err != nil {
		ln.Close()
		return nil, err
	}
	b.SetAdvertised("127.0.0.1", int32(ln.Addr().(*net.TCPAddr).Port))
	srv := server.New(ln, b, server.Limits{MaxFrameBytes: 100 << 20, MaxConnections: 100, MaxInflightReqs: 100}, logger, nil)
	a := &advBroker{b: b, srv: srv, addr: ln.Addr().String()}
	t.Cleanup(a.close)
	return a, nil
}

func addPartition(ctx context.Context, t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, topic string, p int32) int16 {
	t.Helper()
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, pid, epoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: topic, Partitions: []int32{p}}}
	resp, err := add.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func endTxn(ctx context.Context, t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, commit bool) int16 {
	t.Helper()
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = id, pid, epoch, commit
	resp, err := end.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.ErrorCode
}

func txnState(ctx context.Context, t *testing.T, cl *kgo.Client, id string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	d := kmsg.NewPtrDescribeTransactionsRequest()
	d.TransactionalIDs = []string{id}
	resp, err := d.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.TransactionStates[0]
}

func waitTxnState(ctx context.Context, t *testing.T, cl *kgo.Client, id, want string, within time.Duration) (string, bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	var st string
	for time.Now().Before(deadline) {
		st = txnState(ctx, t, cl, id).State
		if st == want {
			return st, true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return st, false
}

// produceRaw sends one batch built from spec to topic-0 with acks=all.
func produceRaw(ctx context.Context, t *testing.T, cl *kgo.Client, txnID *string, topic string, spec batch.Spec, value string) int16 {
	t.Helper()
	if spec.Timestamp == 0 {
		spec.Timestamp = time.Now().UnixMilli()
	}
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID, req.Acks, req.TimeoutMillis = txnID, -1, 30000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch.Build(spec, []batch.Record{{Value: []byte(value)}})}}}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func offsetsOf(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) (hw, lso int64) {
	t.Helper()
	adm := kadm.NewClient(cl)
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := end.Lookup(topic, 0)
	l, _ := stable.Lookup(topic, 0)
	return h.Offset, l.Offset
}

// A client writing under another producer's id (which
// DescribeTransactions, ListTransactions and DescribeProducers show to
// anyone) can neither break a transaction's data nor keep the broker
// from starting. A non-transactional batch at the next epoch into a
// partition where the transaction has data is refused
// (INVALID_TXN_STATE, as Kafka refuses it), so the commit completes. The
// same batch into a partition added to the transaction but holding none
// of its data fences the transaction's marker there (Kafka's marker is
// refused too, and retried): the transaction stays PrepareCommit, but
// the broker still starts, and the commit is visible where its marker
// was written.
func TestForeignWritesUnderATransactionalProducersIDNeverKeepTheBrokerFromStarting(t *testing.T) {
	dir := t.TempDir()
	settings := map[string]string{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "50"}
	a, err := openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := newClient(t, a.addr)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	id := "tx"
	pid, epoch := initProducer(ctx, t, cl, id)
	for p := int32(0); p < 2; p++ {
		if code := addPartition(ctx, t, cl, id, pid, epoch, "t", p); code != 0 {
			t.Fatal(kerr.ErrorForCode(code))
		}
	}
	if code := produceRaw(ctx, t, cl, &id, "t", batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0}, "committed"); code != 0 {
		t.Fatalf("transactional batch: %v", kerr.ErrorForCode(code))
	}
	other := newClient(t, a.addr)
	code := produceRaw(ctx, t, other, nil, "t", batch.Spec{ProducerID: pid, ProducerEpoch: epoch + 1, BaseSequence: 0}, "foreign")
	if code != kerr.InvalidTxnState.Code {
		t.Fatalf("foreign non-transactional batch into the transaction's partition: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	if code := endTxn(ctx, t, cl, id, pid, epoch, true); code != 0 {
		t.Fatalf("EndTxn(commit): %v", kerr.ErrorForCode(code))
	}
	if st, ok := waitTxnState(ctx, t, cl, id, string(txn.CompleteCommit), 10*time.Second); !ok {
		t.Fatalf("the commit did not complete: state %s", st)
	}

	// The next transaction adds both partitions and writes to 0 only;
	// the foreign batch goes to 1, where its epoch fences the marker.
	for p := int32(0); p < 2; p++ {
		if code := addPartition(ctx, t, cl, id, pid, epoch, "t", p); code != 0 {
			t.Fatal(kerr.ErrorForCode(code))
		}
	}
	if code := produceRaw(ctx, t, cl, &id, "t", batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 1}, "second"); code != 0 {
		t.Fatalf("transactional batch: %v", kerr.ErrorForCode(code))
	}
	partOne := func(cl *kgo.Client, spec batch.Spec, value string) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = 1
		rp.Records = batch.Build(spec, []batch.Record{{Value: []byte(value)}})
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := partOne(other, batch.Spec{ProducerID: pid, ProducerEpoch: epoch + 1, BaseSequence: 0}, "foreign"); code != 0 {
		t.Fatalf("foreign batch into an added partition without data: %v", kerr.ErrorForCode(code))
	}
	if code := endTxn(ctx, t, cl, id, pid, epoch, true); code != 0 {
		t.Fatalf("EndTxn(commit): %v", kerr.ErrorForCode(code))
	}
	a.close()
	a, err = openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatalf("restart with a transaction whose marker is refused: Broker.Open: %v", err)
	}
	defer a.close()
	cl = newClient(t, a.addr)
	if hw, lso := offsetsOf(ctx, t, cl, "t"); lso != hw {
		t.Fatalf("partition 0 after the restart: high watermark %d, last stable offset %d; the commit's marker there is written", hw, lso)
	}
}

// Invariant 1 (KIP-890): a batch or TxnOffsetCommit verified while its
// transaction is open, and stalled between the verification and the
// append, never lands after the marker, whatever ends the transaction:
// EndTxn commit or abort, a new instance's InitProducerId, a KIP-360 bump
// of the producer itself, or the timeout abort. After each, the next
// transaction is started at once (same partition), so a verification
// that survived would let the stale write into it.
func TestVerifiedWriteNeverLandsAfterTheMarker(t *testing.T) {
	type ender func(ctx context.Context, t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16) (int64, int16)
	commit := func(c bool) ender {
		return func(ctx context.Context, t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16) (int64, int16) {
			if code := endTxn(ctx, t, cl, id, pid, epoch, c); code != 0 {
				t.Errorf("EndTxn: %v", kerr.ErrorForCode(code))
			}
			want := txn.CompleteAbort
			if c {
				want = txn.CompleteCommit
			}
			if st, ok := waitTxnState(ctx, t, cl, id, string(want), 10*time.Second); !ok {
				t.Errorf("state %s", st)
			}
			return pid, epoch
		}
	}
	reinit := func(kip360 bool) ender {
		return func(ctx context.Context, t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16) (int64, int16) {
			req := kmsg.NewPtrInitProducerIDRequest()
			req.TransactionalID, req.TransactionTimeoutMillis = &id, 60000
			if kip360 {
				req.ProducerID, req.ProducerEpoch = pid, epoch
			}
			resp, err := req.RequestWith(ctx, cl)
			if err != nil || resp.ErrorCode != 0 {
				t.Errorf("InitProducerId: %v %v", err, kerr.ErrorForCode(resp.ErrorCode))
			}
			return resp.ProducerID, resp.ProducerEpoch
		}
	}
	timeout := func(ctx context.Context, t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16) (int64, int16) {
		if st, ok := waitTxnState(ctx, t, cl, id, string(txn.CompleteAbort), 20*time.Second); !ok {
			t.Errorf("timeout abort: state %s", st)
		}
		return reinit(false)(ctx, t, cl, id, pid, epoch)
	}
	for _, tc := range []struct {
		name    string
		end     ender
		timeout int32
	}{
		{"commit", commit(true), 60000},
		{"abort", commit(false), 60000},
		{"new-instance", reinit(false), 60000},
		{"kip360-bump", reinit(true), 60000},
		{"timeout-abort", timeout, 1000},
	} {
		for _, what := range []string{"produce", "txn-offset-commit"} {
			t.Run(tc.name+"/"+what, func(t *testing.T) {
				a, err := openAdvBroker(t, t.TempDir(), map[string]string{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "20"})
				if err != nil {
					t.Fatal(err)
				}
				ctx := testCtx(t)
				cl, other := newClient(t, a.addr), newClient(t, a.addr)
				if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
					t.Fatal(err)
				}
				id := "tx"
				req := kmsg.NewPtrInitProducerIDRequest()
				req.TransactionalID, req.TransactionTimeoutMillis = &id, tc.timeout
				ir, err := req.RequestWith(ctx, cl)
				if err != nil || ir.ErrorCode != 0 {
					t.Fatal(err, ir.ErrorCode)
				}
				pid, epoch := ir.ProducerID, ir.ProducerEpoch
				if code := addPartition(ctx, t, cl, id, pid, epoch, "t", 0); code != 0 {
					t.Fatal(kerr.ErrorForCode(code))
				}
				add := kmsg.NewPtrAddOffsetsToTxnRequest()
				add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, "g"
				if r, err := add.RequestWith(ctx, cl); err != nil || r.ErrorCode != 0 {
					t.Fatal(err, r)
				}
				if code := produceRaw(ctx, t, cl, &id, "t", batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0}, "first"); code != 0 {
					t.Fatal(kerr.ErrorForCode(code))
				}
				hookTopic := "t"
				if what == "txn-offset-commit" {
					hookTopic = "__consumer_offsets"
				}
				var npid int64
				var nepoch int16
				var once sync.Once
				hookDone := make(chan struct{})
				broker.SetAfterTxnVerify(a.b, func(tp txn.TopicPartition) {
					if tp.Topic != hookTopic {
						return
					}
					once.Do(func() {
						defer close(hookDone)
						npid, nepoch = tc.end(ctx, t, other, id, pid, epoch)
						// The next transaction of the same id starts at once,
						// on the same partition and group.
						if code := addPartition(ctx, t, other, id, npid, nepoch, "t", 0); code != 0 {
							t.Errorf("next AddPartitions: %v", kerr.ErrorForCode(code))
						}
						add := kmsg.NewPtrAddOffsetsToTxnRequest()
						add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, npid, nepoch, "g"
						if r, err := add.RequestWith(ctx, other); err != nil || r.ErrorCode != 0 {
							t.Errorf("next AddOffsetsToTxn: %v %+v", err, r)
						}
					})
				})
				defer broker.SetAfterTxnVerify(a.b, nil)
				noRetry := newClient(t, a.addr, kgo.RequestRetries(0))
				var code int16
				if what == "produce" {
					code = produceRaw(ctx, t, noRetry, &id, "t", batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 1}, "stale")
				} else {
					c := kmsg.NewPtrTxnOffsetCommitRequest()
					c.TransactionalID, c.Group, c.ProducerID, c.ProducerEpoch, c.Generation = id, "g", pid, epoch, -1
					c.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 99, LeaderEpoch: -1}}}}
					r, err := c.RequestWith(ctx, noRetry)
					if err != nil {
						t.Fatal(err)
					}
					code = r.Topics[0].Partitions[0].ErrorCode
				}
				select {
				case <-hookDone:
				case <-time.After(30 * time.Second):
					t.Fatal("hook did not run")
				}
				if code == 0 {
					t.Errorf("stale %s verified in the first transaction was accepted after its end", what)
				}
				// The next transaction commits with nothing of its own: the
				// stale write must not become visible through it.
				if c := endTxn(ctx, t, other, id, npid, nepoch, true); c != 0 {
					t.Fatalf("next EndTxn: %v", kerr.ErrorForCode(c))
				}
				if st, ok := waitTxnState(ctx, t, other, id, string(txn.CompleteCommit), 10*time.Second); !ok {
					t.Fatalf("next commit: %s", st)
				}
				// read_committed: "first" only if the first transaction
				// committed; never "stale".
				rc := dialBroker(t, a.addr, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
				_, lso := offsetsOf(ctx, t, cl, "t")
				hw, _ := offsetsOf(ctx, t, cl, "t")
				if lso != hw {
					t.Errorf("after the next commit: last stable offset %d, high watermark %d", lso, hw)
				}
				var got []string
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				for {
					fs := rc.PollFetches(pctx)
					if pctx.Err() != nil {
						break
					}
					fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
				}
				cancel()
				for _, v := range got {
					if v == "stale" {
						t.Errorf("read_committed saw the stale batch: %v", got)
					}
				}
				offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "g")
				if err != nil {
					t.Fatal(err)
				}
				if o, ok := offs.Lookup("t", 0); ok && o.At == 99 {
					t.Errorf("the stale TxnOffsetCommit (99) became the group's offset")
				}
				t.Logf("%s: code %v, read_committed %v", what, kerr.ErrorForCode(code), got)
			})
		}
	}
}

// Committed offsets follow the log: a TxnOffsetCommit of offset 5 is
// appended, then a plain OffsetCommit of 7 for the same partition, then
// the transaction commits. Whatever the broker answers, the group's
// offset must be the same before and after a restart, also once the
// cleaner has compacted __consumer_offsets.
func TestTxnOffsetVersusPlainCommitSurvivesCompactionAndRestart(t *testing.T) {
	dir := t.TempDir()
	settings := map[string]string{
		"offsets.topic.segment.bytes": "200",
		"log.cleaner.backoff.ms":      "20",
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
	id := "tx"
	pid, epoch := initProducer(ctx, t, cl, id)
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, "g"
	if r, err := add.RequestWith(ctx, cl); err != nil || r.ErrorCode != 0 {
		t.Fatal(err, r)
	}
	c := kmsg.NewPtrTxnOffsetCommitRequest()
	c.TransactionalID, c.Group, c.ProducerID, c.ProducerEpoch, c.Generation = id, "g", pid, epoch, -1
	c.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, LeaderEpoch: -1}}}}
	if r, err := c.RequestWith(ctx, cl); err != nil || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal(err, r)
	}
	plain := kadm.Offsets{}
	plain.Add(kadm.Offset{Topic: "t", Partition: 0, At: 7, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "g", plain); err != nil || r.Error() != nil {
		t.Fatalf("plain commit: %v %v", err, r.Error())
	}
	if code := endTxn(ctx, t, cl, id, pid, epoch, true); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if st, ok := waitTxnState(ctx, t, cl, id, string(txn.CompleteCommit), 10*time.Second); !ok {
		t.Fatal(st)
	}
	fetch := func(cl *kgo.Client) int64 {
		offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup("t", 0)
		return o.At
	}
	before := fetch(cl)
	// More plain commits of another partition seal the segments that
	// hold the two commits, so the cleaner can compact them.
	for i := range 20 {
		more := kadm.Offsets{}
		more.Add(kadm.Offset{Topic: "u", Partition: 0, At: int64(i), LeaderEpoch: -1})
		if r, err := adm.CommitOffsets(ctx, "g", more); err != nil || r.Error() != nil {
			t.Fatal(err, r.Error())
		}
	}
	time.Sleep(500 * time.Millisecond) // cleaner passes
	a.close()
	a2, err := openAdvBroker(t, dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	after := fetch(newClient(t, a2.addr))
	t.Logf("group offset of t-0: %d before the restart, %d after (Kafka: 7, the later append)", before, after)
	if before != after {
		t.Fatalf("the committed offset changed across a restart: %d before, %d after", before, after)
	}
}

// Invariant 4 under load: several transactional producers commit and
// abort while read_committed consumers watch; a consumer never sees an
// aborted record.
func TestReadCommittedNeverSeesAbortedUnderLoad(t *testing.T) {
	_, addr := serveBroker(t, map[string]string{"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"})
	ctx := testCtx(t)
	cl := newClient(t, addr)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithTimeout(ctx, 4*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	aborted := map[string]bool{}
	committed := map[string]bool{}
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newClient(t, addr, kgo.TransactionalID(fmt.Sprintf("w%d", w)), kgo.DefaultProduceTopic("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			for n := 0; runCtx.Err() == nil; n++ {
				commit := (n+w)%3 != 0
				v := fmt.Sprintf("w%d-%d-%v", w, n, commit)
				if err := p.BeginTransaction(); err != nil {
					t.Error(err)
					return
				}
				for part := range int32(2) {
					if err := p.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte(v)}).FirstErr(); err != nil {
						t.Error(err)
						return
					}
				}
				mu.Lock()
				if commit {
					committed[v] = true
				} else {
					aborted[v] = true
				}
				mu.Unlock()
				if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := map[string]int{}
	var smu sync.Mutex
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, addr, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(50*time.Millisecond))
			for runCtx.Err() == nil {
				fs := c.PollFetches(runCtx)
				fs.EachRecord(func(r *kgo.Record) {
					v := string(r.Value)
					mu.Lock()
					bad := aborted[v]
					mu.Unlock()
					if bad || strings.HasSuffix(v, "false") {
						t.Errorf("read_committed saw aborted record %q at %d/%d", v, r.Partition, r.Offset)
					}
					smu.Lock()
					seen[v]++
					smu.Unlock()
				})
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	t.Logf("%d committed, %d aborted transactions; %d distinct values seen read_committed", len(committed), len(aborted), len(seen))
	mu.Unlock()
}

// Invariant 5: with a transaction open at offset 2, ListOffsets under
// read_committed answers nothing at or past it (latest, a timestamp,
// the largest timestamp) and a read_committed Fetch returns nothing past
// it; a read_committed Fetch waiting on min.bytes at the last stable
// offset is woken when the commit makes the data visible.
func TestReadCommittedListOffsetsAndFetchStopAtTheLSO(t *testing.T) {
	_, addr := serveBroker(t, map[string]string{"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"})
	ctx := testCtx(t)
	cl := newClient(t, addr)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	for i, ts := range []int64{1000, 1001} {
		if code := produceRaw(ctx, t, cl, nil, "t", batch.Spec{Timestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, fmt.Sprint("plain", i)); code != 0 {
			t.Fatal(kerr.ErrorForCode(code))
		}
	}
	id := "tx"
	pid, epoch := initProducer(ctx, t, cl, id)
	if code := addPartition(ctx, t, cl, id, pid, epoch, "t", 0); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := produceRaw(ctx, t, cl, &id, "t", batch.Spec{Timestamp: 5000, Attributes: batch.AttrTransactional, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0}, "open"); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := produceRaw(ctx, t, cl, nil, "t", batch.Spec{Timestamp: 3000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, "after"); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	list := func(iso int8, ts int64) (int64, int64) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version, req.IsolationLevel, req.ReplicaID = 8, iso, -1
		req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: ts, CurrentLeaderEpoch: -1}}}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("ListOffsets(%d, %d): %v", iso, ts, kerr.ErrorForCode(p.ErrorCode))
		}
		return p.Offset, p.Timestamp
	}
	for _, ts := range []int64{-1, -3, 1500, 2000, 4000} {
		off, got := list(1, ts)
		uoff, _ := list(0, ts)
		t.Logf("ListOffsets ts %d: read_committed %d (ts %d), read_uncommitted %d", ts, off, got, uoff)
		if off >= 2 && !(ts == -1 && off == 2) {
			t.Errorf("ListOffsets(read_committed, ts %d) = %d, at or past the open transaction at 2", ts, off)
		}
	}
	fetch := func(offset int64, minBytes int32, wait time.Duration) (*kmsg.FetchResponseTopicPartition, time.Duration) {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.ReplicaID, req.IsolationLevel = 11, -1, 1
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = int32(wait/time.Millisecond), minBytes, 1<<20
		req.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: offset, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LogStartOffset: -1}}}}
		start := time.Now()
		resp, err := req.RequestWith(ctx, newClient(t, addr, kgo.MaxVersions(kversion.V3_0_0())))
		if err != nil {
			t.Fatal(err)
		}
		if c := resp.Topics[0].Partitions[0].ErrorCode; c != 0 {
			t.Fatalf("fetch: %v", kerr.ErrorForCode(c))
		}
		return &resp.Topics[0].Partitions[0], time.Since(start)
	}
	p, _ := fetch(0, 1, 0)
	last := int64(-1)
	for rest := p.RecordBatches; len(rest) > 0; {
		h, err := batch.ParseHeader(rest)
		if err != nil {
			t.Fatal(err)
		}
		last = h.LastOffset()
		rest = rest[h.Size():]
	}
	if p.LastStableOffset != 2 || last >= 2 {
		t.Errorf("read_committed fetch: last stable offset %d, last offset returned %d; want 2 and below 2", p.LastStableOffset, last)
	}
	// A waiting read_committed fetch at the LSO is woken by the commit.
	type res struct {
		p    *kmsg.FetchResponseTopicPartition
		took time.Duration
	}
	ch := make(chan res, 1)
	go func() { p, d := fetch(2, 1, 10*time.Second); ch <- res{p, d} }()
	time.Sleep(300 * time.Millisecond)
	if code := endTxn(ctx, t, cl, id, pid, epoch, true); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	r := <-ch
	t.Logf("waiting read_committed fetch returned %d bytes after %v", len(r.p.RecordBatches), r.took.Round(time.Millisecond))
	if len(r.p.RecordBatches) == 0 || r.took > 3*time.Second {
		t.Errorf("read_committed fetch waiting at the LSO: %d bytes after %v; the commit did not wake it", len(r.p.RecordBatches), r.took)
	}
}

// Invariant 4: Broker.Close with transactions completing (a commit just
// answered, its markers being written; a fetch waiting; a produce waiting
// for durability) returns promptly and leaves no goroutine of the broker
// behind.
func TestCloseWithTransactionsCompletingLeaksNothing(t *testing.T) {
	base := runtime.NumGoroutine()
	for round := range 3 {
		a, err := openAdvBroker(t, t.TempDir(), map[string]string{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "5"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cl, err := kgo.NewClient(kgo.SeedBrokers(a.addr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var ended atomic.Int64
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("w%d", w)
				req := kmsg.NewPtrInitProducerIDRequest()
				req.TransactionalID, req.TransactionTimeoutMillis = &id, 60000
				ir, err := req.RequestWith(ctx, cl)
				if err != nil || ir.ErrorCode != 0 {
					return
				}
				for n := int32(0); ctx.Err() == nil; n++ {
					add := kmsg.NewPtrAddPartitionsToTxnRequest()
					add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, ir.ProducerID, ir.ProducerEpoch
					add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}}
					if _, err := add.RequestWith(ctx, cl); err != nil {
						return
					}
					ao := kmsg.NewPtrAddOffsetsToTxnRequest()
					ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = id, ir.ProducerID, ir.ProducerEpoch, "g"
					if _, err := ao.RequestWith(ctx, cl); err != nil {
						return
					}
					pr := kmsg.NewPtrProduceRequest()
					pr.TransactionID, pr.Acks, pr.TimeoutMillis = &id, -1, 30000
					pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch.Build(batch.Spec{
						Attributes: batch.AttrTransactional, Timestamp: time.Now().UnixMilli(), ProducerID: ir.ProducerID, ProducerEpoch: ir.ProducerEpoch, BaseSequence: n,
					}, []batch.Record{{Value: []byte("v")}})}}}}
					if _, err := pr.RequestWith(ctx, cl); err != nil {
						return
					}
					c := kmsg.NewPtrTxnOffsetCommitRequest()
					c.TransactionalID, c.Group, c.ProducerID, c.ProducerEpoch, c.Generation = id, "g", ir.ProducerID, ir.ProducerEpoch, -1
					c.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: int64(n), LeaderEpoch: -1}}}}
					if _, err := c.RequestWith(ctx, cl); err != nil {
						return
					}
					end := kmsg.NewPtrEndTxnRequest()
					end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = id, ir.ProducerID, ir.ProducerEpoch, n%2 == 0
					if r, err := end.RequestWith(ctx, cl); err != nil {
						return
					} else if r.ErrorCode == 0 {
						ended.Add(1)
					}
				}
			}()
		}
		// A read_committed fetch waiting far past the end.
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := kmsg.NewPtrFetchRequest()
			f.ReplicaID, f.IsolationLevel, f.MaxWaitMillis, f.MinBytes, f.MaxBytes = -1, 1, 20000, 1<<20, 1<<20
			f.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LogStartOffset: -1}}}}
			_, _ = f.RequestWith(ctx, cl)
		}()
		time.Sleep(time.Duration(200+100*round) * time.Millisecond)
		start := time.Now()
		a.close()
		took := time.Since(start)
		cancel()
		cl.Close()
		wg.Wait()
		t.Logf("round %d: %d transactions ended; Broker.Close took %v", round, ended.Load(), took.Round(time.Millisecond))
		if took > 5*time.Second {
			t.Errorf("round %d: Broker.Close took %v", round, took)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var weir []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "weir-broker/weir/internal") && !strings.Contains(g, "txn_invariants_test") {
				weir = append(weir, g)
			}
		}
		t.Fatalf("%d goroutines after Close, %d before; broker goroutines left:\n%s", n, base, strings.Join(weir, "\n\n"))
	}
}
