package e2e

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/config"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/partition"
	"github.com/weir-broker/weir/pkg/weir"
)

func txnProducer(t *testing.T, addr, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newClient(t, addr, append([]kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic("t"),
		kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
}

// runTxn produces one record per partition in a transaction and ends it.
func runTxn(t *testing.T, cl *kgo.Client, tag string, partitions int32, commit bool) error {
	t.Helper()
	ctx := testCtx(t)
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	for p := range partitions {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(tag)}).FirstErr(); err != nil {
			return err
		}
	}
	return cl.EndTransaction(ctx, kgo.TransactionEndTry(commit))
}

// readAll reads every partition of topic to its current end at the given
// isolation level. It first appends a plain sentinel record to each
// partition and reads until every sentinel is seen: markers and dropped
// aborted records leave no other sign of where the end is. Sentinels are
// left out of the values returned.
func readAll(t *testing.T, addr, topic string, committed bool) []string {
	t.Helper()
	ctx := testCtx(t)
	td, err := newAdmin(t, addr).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	parts := len(td[topic].Partitions)
	prod := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	mine := sentinel + strconv.FormatInt(time.Now().UnixNano(), 10)
	for p := range int32(parts) {
		if err := prod.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(mine)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl := newClient(t, addr, opts...)
	var vals []string
	done := map[int32]bool{}
	for len(done) < parts {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s to its end: %v (saw %v)", topic, ctx.Err(), vals)
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch v := string(r.Value); {
			case v == mine:
				done[r.Partition] = true
			case !done[r.Partition] && !strings.HasPrefix(v, sentinel):
				vals = append(vals, v)
			}
		})
	}
	return vals
}

const sentinel = "~end~"

func count(vals []string, v string) int {
	n := 0
	for _, x := range vals {
		if x == v {
			n++
		}
	}
	return n
}

// A committed transaction's writes to several partitions are all visible
// to read_committed consumers; an aborted one's are not (read_uncommitted
// sees both, as in Kafka).
func TestTransactionsAreAtomicForReadCommitted(t *testing.T) {
	b, _ := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "t", 3, nil)
	cl := txnProducer(t, b.Addr(), "tx-atomic")
	if err := runTxn(t, cl, "committed", 3, true); err != nil {
		t.Fatal(err)
	}
	if err := runTxn(t, cl, "aborted", 3, false); err != nil {
		t.Fatal(err)
	}
	if err := runTxn(t, cl, "committed-2", 3, true); err != nil {
		t.Fatal(err)
	}
	rc := readAll(t, b.Addr(), "t", true)
	if count(rc, "committed") != 3 || count(rc, "committed-2") != 3 || count(rc, "aborted") != 0 {
		t.Fatalf("read_committed saw %v", rc)
	}
	ru := readAll(t, b.Addr(), "t", false)
	if count(ru, "aborted") != 3 {
		t.Fatalf("read_uncommitted saw %v", ru)
	}
}

// While a transaction is open, the last stable offset stays at its first
// offset: read_committed consumers see nothing from there on, not even
// records committed later by others, until it ends.
func TestOpenTransactionHoldsTheLastStableOffset(t *testing.T) {
	b, _ := startBroker(t, nil)
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "t", 1, nil)
	produceValues(t, b.Addr(), "t", 0, 2) // offsets 0, 1
	cl := txnProducer(t, b.Addr(), "tx-lso")
	ctx := testCtx(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b.Addr(), "t", 2, 3) // a plain record after the open transaction
	lso, err := adm.ListCommittedOffsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lso.Lookup("t", 0); o.Offset != 2 {
		t.Fatalf("last stable offset %d while a transaction is open at 2", o.Offset)
	}
	hw, _ := adm.ListEndOffsets(ctx, "t")
	if o, _ := hw.Lookup("t", 0); o.Offset != 4 {
		t.Fatalf("high watermark %d, want 4", o.Offset)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	rc := readAll(t, b.Addr(), "t", true)
	if len(rc) != 4 || rc[2] != "open" {
		t.Fatalf("after commit read_committed saw %v", rc)
	}
}

// A second producer with the same transactional id fences the first: the
// first can neither write nor commit, and its open transaction is aborted.
func TestNewInstanceFencesTheZombie(t *testing.T) {
	b, _ := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "t", 1, nil)
	ctx := testCtx(t)
	zombie := txnProducer(t, b.Addr(), "tx-zombie")
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := txnProducer(t, b.Addr(), "tx-zombie")
	if err := runTxn(t, fresh, "fresh", 1, true); err != nil {
		t.Fatal(err)
	}
	err := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("late")}).FirstErr()
	if err == nil {
		err = zombie.EndTransaction(ctx, kgo.TryCommit)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie after fencing: %v", err)
	}
	rc := readAll(t, b.Addr(), "t", true)
	if count(rc, "zombie") != 0 || count(rc, "late") != 0 || count(rc, "fresh") != 1 {
		t.Fatalf("read_committed saw %v", rc)
	}
}

// A transaction left open past its timeout is aborted by the coordinator,
// which fences its producer.
func TestTimedOutTransactionIsAbortedAndFenced(t *testing.T) {
	b, _ := startBroker(t, map[string]string{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "50"})
	createTopic(t, newAdmin(t, b.Addr()), "t", 1, nil)
	ctx := testCtx(t)
	cl := txnProducer(t, b.Addr(), "tx-timeout", kgo.TransactionTimeout(200*time.Millisecond))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("stalled")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := newAdmin(t, b.Addr())
	for { // until the coordinator has aborted it
		lso, err := adm.ListCommittedOffsets(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := lso.Lookup("t", 0); o.Offset == 2 { // data + abort marker
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the timed-out transaction was never aborted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	err := cl.EndTransaction(ctx, kgo.TryCommit)
	if err == nil {
		t.Fatal("commit after the coordinator aborted on timeout succeeded")
	}
	if rc := readAll(t, b.Addr(), "t", true); len(rc) != 0 {
		t.Fatalf("read_committed saw %v", rc)
	}
}

// A transaction left open when the broker is SIGKILLed is still open
// after the restart (its state is in __transaction_state); the next
// instance with the same transactional id aborts it.
func TestOpenTransactionSurvivesSIGKILLAndIsAbortedByTheNextInstance(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "127.0.0.1:0", dir)
	createTopic(t, newAdmin(t, p.addr), "t", 2, nil)
	ctx := testCtx(t)
	first := txnProducer(t, p.addr, "tx-crash")
	if err := runTxn(t, first, "before", 2, true); err != nil {
		t.Fatal(err)
	}
	if err := first.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for part := range int32(2) {
		if err := first.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte("open")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p.kill()
	p = startProc(t, p.addr, dir)
	lso, _ := newAdmin(t, p.addr).ListCommittedOffsets(ctx, "t")
	lso.Each(func(o kadm.ListedOffset) {
		if o.Offset != 2 { // "before" and its marker; "open" holds the LSO
			t.Fatalf("partition %d: last stable offset %d after restart, want 2", o.Partition, o.Offset)
		}
	})
	second := txnProducer(t, p.addr, "tx-crash")
	if err := runTxn(t, second, "after", 2, true); err != nil {
		t.Fatal(err)
	}
	rc := readAll(t, p.addr, "t", true)
	if count(rc, "before") != 2 || count(rc, "after") != 2 || count(rc, "open") != 0 {
		t.Fatalf("read_committed saw %v", rc)
	}
}

// KIP-890 part 1: a transactional batch for a partition that is not in
// the producer's open transaction is refused, so a late retry cannot
// land in a later transaction.
func TestTransactionalWriteOutsideTheTransactionIsRefused(t *testing.T) {
	b, _ := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "t", 2, nil)
	cl := newClient(t, b.Addr())
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID = kmsg.StringPtr("tx-raw")
	init.TransactionTimeoutMillis = 60000
	// InitProducerId goes to the transaction coordinator.
	ir, err := init.RequestWith(testCtx(t), cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v %v", err, ir)
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = "tx-raw", ir.ProducerID, ir.ProducerEpoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = "t", []int32{0}
	add.Topics = append(add.Topics, at)
	if ar, err := add.RequestWith(testCtx(t), cl); err != nil || ar.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("AddPartitionsToTxn: %v %+v", err, ar)
	}
	txnBatch := func(seq int32) []byte {
		return batch.Build(batch.Spec{Attributes: batch.AttrTransactional, Timestamp: time.Now().UnixMilli(),
			ProducerID: ir.ProducerID, ProducerEpoch: ir.ProducerEpoch, BaseSequence: seq}, []batch.Record{{Value: []byte(strconv.Itoa(int(seq)))}})
	}
	conn := dialRaw(t, b.Addr())
	send := func(partition int32, seq int32) int16 {
		req := produceReq("t", txnBatch(seq))
		req.Topics[0].Partitions[0].Partition = partition
		req.TransactionID = kmsg.StringPtr("tx-raw")
		id := conn.send(req)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		conn.recv(resp, id)
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := send(0, 0); code != 0 {
		t.Fatalf("write to an added partition: error %d", code)
	}
	if code := send(1, 0); code != kerr.InvalidTxnState.Code {
		t.Fatalf("write to a partition outside the transaction: error %d, want INVALID_TXN_STATE", code)
	}
}

// ListTransactions and DescribeTransactions show the coordinator's state.
func TestListAndDescribeTransactions(t *testing.T) {
	b, _ := startBroker(t, nil)
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "t", 2, nil)
	cl := txnProducer(t, b.Addr(), "tx-describe")
	ctx := testCtx(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed["tx-describe"]; !ok {
		t.Fatalf("ongoing transactions: %v", listed)
	}
	described, err := adm.DescribeTransactions(ctx, "tx-describe")
	if err != nil {
		t.Fatal(err)
	}
	d := described["tx-describe"]
	if d.State != "Ongoing" || len(d.Topics["t"]) != 1 {
		t.Fatalf("described: %+v", d)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// EndTxn is answered once the commit is decided (PrepareCommit is
	// durable); the markers follow, then CompleteCommit.
	for {
		described, _ = adm.DescribeTransactions(ctx, "tx-describe")
		state := described["tx-describe"].State
		if state == "CompleteCommit" {
			break
		}
		if state != "PrepareCommit" || ctx.Err() != nil {
			t.Fatalf("after commit: %+v", described["tx-describe"])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The broker dies in the middle of a commit, after PrepareCommit is
// durable and before the markers are written, or after the markers and
// before CompleteCommit. At restart the coordinator finishes the commit:
// every partition of the transaction shows it, none is half-visible, the
// last stable offset moves past it, and the client's retried EndTxn
// succeeds.
func TestBrokerCrashMidCommitCompletesTheTransaction(t *testing.T) {
	for _, point := range []string{"txn.before-markers", "txn.before-complete"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			p := startProc(t, "127.0.0.1:0", dir, "--unsafe-faults", point+"=exit")
			addr := p.addr
			createTopic(t, newAdmin(t, addr), "t", 2, nil)
			cl := txnProducer(t, addr, "tx-crash-commit")
			ctx := testCtx(t)
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			for part := range int32(2) {
				if err := cl.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte("in-commit")}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			ended := make(chan error, 1)
			go func() { ended <- cl.EndTransaction(ctx, kgo.TryCommit) }()
			p.waitExit() // the fault ends the broker mid-commit
			startProc(t, addr, dir)
			if err := <-ended; err != nil {
				t.Fatalf("EndTransaction across the crash: %v", err)
			}
			adm := newAdmin(t, addr)
			lso, _ := adm.ListCommittedOffsets(ctx, "t")
			hw, _ := adm.ListEndOffsets(ctx, "t")
			lso.Each(func(o kadm.ListedOffset) {
				// A marker written again at recovery is harmless: the
				// stable offset reaches the end either way.
				if h, _ := hw.Lookup("t", o.Partition); o.Offset != h.Offset || o.Offset < 2 {
					t.Fatalf("partition %d: last stable offset %d, high watermark %d, want equal and past the record", o.Partition, o.Offset, h.Offset)
				}
			})
			if rc := readAll(t, addr, "t", true); count(rc, "in-commit") != 2 {
				t.Fatalf("read_committed saw %v", rc)
			}
			d, err := adm.DescribeTransactions(ctx, "tx-crash-commit")
			if err != nil || d["tx-crash-commit"].State != "CompleteCommit" {
				t.Fatalf("transaction after restart: %+v %v", d["tx-crash-commit"], err)
			}
		})
	}
}

// The broker dies in the middle of committing a transaction that carries
// consumer offsets (AddOffsetsToTxn and TxnOffsetCommit, as a
// consume-transform-produce loop sends). Recovery finishes the commit,
// which writes a marker to __consumer_offsets too, so the group
// coordinator must exist before the transaction coordinator recovers: the
// broker restarts, the records are visible read_committed and the group's
// offsets are committed.
func TestBrokerCrashMidCommitWithOffsetsRestartsAndCompletes(t *testing.T) {
	for _, point := range []string{"txn.before-markers", "txn.before-complete"} {
		t.Run(point, func(t *testing.T) {
			const id, grp = "tx-crash-offsets", "g-crash-offsets"
			dir := t.TempDir()
			p := startProc(t, "127.0.0.1:0", dir, "--unsafe-faults", point+"=exit")
			addr := p.addr
			createTopic(t, newAdmin(t, addr), "t", 1, nil)
			cl := txnProducer(t, addr, id)
			ctx := testCtx(t)
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("with-offsets")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			commitOffsetsInTxn(t, cl, id, grp, "t", 0, 42)
			ended := make(chan error, 1)
			go func() { ended <- cl.EndTransaction(ctx, kgo.TryCommit) }()
			p.waitExit() // the fault ends the broker mid-commit
			startProc(t, addr, dir)
			if err := <-ended; err != nil {
				t.Fatalf("EndTransaction across the crash: %v", err)
			}
			if rc := readAll(t, addr, "t", true); count(rc, "with-offsets") != 1 {
				t.Fatalf("read_committed saw %v", rc)
			}
			adm := newAdmin(t, addr)
			offs, err := adm.FetchOffsets(ctx, grp)
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := offs.Lookup("t", 0); !ok || o.Err != nil || o.At != 42 {
				t.Fatalf("group offset for t-0 after restart: %+v (found %v), want 42", o, ok)
			}
		})
	}
}

// commitOffsetsInTxn adds group's offsets to cl's open transaction
// (AddOffsetsToTxn) and commits offset for topic-partition in it
// (TxnOffsetCommit), as a consume-transform-produce loop does.
func commitOffsetsInTxn(t *testing.T, cl *kgo.Client, id, grp, topic string, partition int32, offset int64) {
	t.Helper()
	ctx := testCtx(t)
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, grp
	addResp, err := add.RequestWith(ctx, cl)
	if err != nil || addResp.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %+v", err, addResp)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = id, grp, pid, epoch
	commit.Generation = -1 // not a member: a standalone commit
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = topic
	cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = partition, offset
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	commitResp, err := commit.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("TxnOffsetCommit: %v", err)
	}
	for _, rt := range commitResp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("TxnOffsetCommit %s-%d: error %d", rt.Topic, rp.Partition, rp.ErrorCode)
			}
		}
	}
}

// A transaction carrying consumer offsets is still open when the broker
// stops, and has timed out by the time it starts again. The transaction
// ticker, firing right after the restart, aborts it, which writes a
// marker to __consumer_offsets through the group coordinator: the ticker
// must not start before that coordinator exists (a nil dereference, or a
// data race the race detector reports). The abort drops the offsets and
// the records.
func TestTimedOutTransactionWithOffsetsIsAbortedRightAfterRestart(t *testing.T) {
	const id, grp = "tx-timeout-offsets", "g-timeout-offsets"
	dir := t.TempDir()
	b := startBrokerIn(t, dir, nil)
	createTopic(t, newAdmin(t, b.Addr()), "t", 1, nil)
	// Timed out as soon as it begins; the default cleanup interval keeps
	// this first broker from aborting it.
	cl := txnProducer(t, b.Addr(), id, kgo.TransactionTimeout(time.Millisecond))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(testCtx(t), &kgo.Record{Value: []byte("timed-out")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	commitOffsetsInTxn(t, cl, id, grp, "t", 0, 42)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startBrokerIn(t, dir, map[string]string{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "1"})
	adm := newAdmin(t, b.Addr())
	ctx := testCtx(t)
	for {
		d, err := adm.DescribeTransactions(ctx, id)
		if err == nil && d[id].State == "CompleteAbort" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("transaction after restart: %+v %v", d[id], err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	offs, err := adm.FetchOffsets(ctx, grp)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("t", 0); ok && o.At >= 0 {
		t.Fatalf("aborted transaction's offset committed: %+v", o)
	}
	if rc := readAll(t, b.Addr(), "t", true); count(rc, "timed-out") != 0 {
		t.Fatalf("read_committed saw %v", rc)
	}
}

// A broker whose __transaction_state holds a record it cannot read
// refuses to start with an error; undoing the half-built broker must not
// itself crash on the parts not built yet.
func TestUnreadableTransactionStateFailsTheStartWithAnError(t *testing.T) {
	dir := t.TempDir()
	settings := map[string]string{"transaction.state.log.num.partitions": "1"}
	b := startBrokerIn(t, dir, settings)
	createTopic(t, newAdmin(t, b.Addr()), "t", 1, nil)
	if err := runTxn(t, txnProducer(t, b.Addr(), "tx-unreadable"), "x", 1, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	part, err := partition.OpenWith("__transaction_state", 0, filepath.Join(dir, "__transaction_state-0"), wlog.DefaultConfig(), 0, []int32{1}, partition.Options{ReplicaID: 1})
	if err != nil {
		t.Fatal(err)
	}
	garbage := batch.Build(batch.Spec{Timestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]batch.Record{{Key: []byte("tx-unreadable"), Value: []byte("not a transaction")}})
	h, err := batch.ParseHeader(garbage)
	if err != nil {
		t.Fatal(err)
	}
	base, _, err := part.Append(garbage, h, time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	if err := <-part.WaitDurable(base + 1); err != nil {
		t.Fatal(err)
	}
	if err := part.Close(); err != nil {
		t.Fatal(err)
	}
	s := config.NewBroker()
	for k, v := range settings {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := weir.Start(testCtx(t), weir.Config{DataDir: dir, Broker: s}); err == nil {
		b.Close()
		t.Fatal("started on an unreadable __transaction_state")
	} else {
		t.Logf("start refused: %v", err)
	}
}

// listOffset asks for the offset of timestamp (or -3, the record with the
// largest timestamp) in t-0 at an isolation level (1: read_committed).
func listOffset(t *testing.T, cl *kgo.Client, timestamp int64, isolation int8) (offset, ts int64) {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = 0, timestamp
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("ListOffsets %d: error %d", timestamp, p.ErrorCode)
	}
	return p.Offset, p.Timestamp
}

// Under read_committed, ListOffsets by timestamp and for the largest
// timestamp (-3) answers only below the last stable offset, as a
// read_committed fetch reads: an offset in or after an open transaction
// is not answered (-1) until the transaction ends.
func TestListOffsetsByTimestampReadCommittedStopsAtTheLastStableOffset(t *testing.T) {
	b, _ := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "t", 1, nil)
	ctx := testCtx(t)
	plain := newClient(t, b.Addr(), kgo.DefaultProduceTopic("t"))
	produceAt := func(cl *kgo.Client, ms int64) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v"), Timestamp: time.UnixMilli(ms)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produceAt(plain, 1000) // offset 0
	produceAt(plain, 2000) // offset 1
	txn := txnProducer(t, b.Addr(), "tx-list-offsets")
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceAt(txn, 3000)   // offset 2, open: the last stable offset stays at 2
	produceAt(plain, 4000) // offset 3, after the open transaction

	for _, c := range []struct {
		timestamp              int64
		committed, uncommitted int64
	}{
		{1500, 1, 1},
		{2500, -1, 2},
		{3500, -1, 3},
		{-3, -1, 3},
	} {
		if off, _ := listOffset(t, plain, c.timestamp, 1); off != c.committed {
			t.Errorf("timestamp %d read_committed: offset %d, want %d", c.timestamp, off, c.committed)
		}
		if off, _ := listOffset(t, plain, c.timestamp, 0); off != c.uncommitted {
			t.Errorf("timestamp %d read_uncommitted: offset %d, want %d", c.timestamp, off, c.uncommitted)
		}
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The marker follows the EndTxn answer: wait for it to move the last
	// stable offset past the transaction.
	for {
		if off, _ := listOffset(t, plain, -1, 1); off == 5 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the last stable offset did not pass the committed transaction")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if off, ts := listOffset(t, plain, 2500, 1); off != 2 || ts != 3000 {
		t.Fatalf("timestamp 2500 read_committed after the commit: offset %d timestamp %d, want 2 at 3000", off, ts)
	}
}
