package e2e

// SIGKILL a real `weir serve` at random moments while a
// producer runs consume-transform-produce style transactions that carry
// group offsets. After each restart, the data and the offsets of every
// transaction are both visible or both not: never half.

import (
	"context"
	"math/rand"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/group"
)

func TestSIGKILLDuringCommitsWithOffsetsNeverHalf(t *testing.T) {
	const id, grp = "tx-adv-kill", "g-adv-kill"
	dir := t.TempDir()
	p := startProc(t, "127.0.0.1:0", dir)
	addr := p.addr
	createTopic(t, newAdmin(t, addr), "t", 2, nil)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	next := int64(0) // the value of the next transaction
	for round := range 6 {
		ctx, cancel := context.WithCancel(context.Background())
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID(id), kgo.DefaultProduceTopic("t"),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryTimeout(5*time.Second),
			kgo.RecordDeliveryTimeout(5*time.Second), kgo.TransactionTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		stopped := make(chan int64, 1)
		go func(n int64) {
			done := int64(0)
			defer func() { stopped <- done }()
			for ctx.Err() == nil {
				if err := cl.BeginTransaction(); err != nil {
					return
				}
				v := []byte(strconv.FormatInt(n, 10))
				for part := range int32(2) {
					if err := cl.ProduceSync(ctx, &kgo.Record{Partition: part, Value: v}).FirstErr(); err != nil {
						return
					}
				}
				if err := txnOffsetCommit(ctx, cl, id, grp, n+1); err != nil {
					return
				}
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					return
				}
				n++
				done++
			}
		}(next)
		time.Sleep(time.Duration(150+rng.Intn(600)) * time.Millisecond)
		p.kill()
		cancel()
		p = startProc(t, addr, dir)
		// A new instance aborts what the killed one left open, and fences
		// the old client (franz-go does not give up a produce request
		// that may have been written, so it waits for the broker).
		initTxnID(t, addr, id)
		var n int64
		select {
		case n = <-stopped:
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: the old producer did not stop within 60s of the restart", round)
		}
		cl.Close()
		t.Logf("round %d: %d transactions acknowledged around the SIGKILL", round, n)
		vals := readAll(t, addr, "t", true)
		adm := newAdmin(t, addr)
		offs, err := adm.FetchOffsets(testCtx(t), grp)
		if err != nil {
			t.Fatal(err)
		}
		committed := int64(0)
		if o, ok := offs.Lookup("t", 0); ok && o.Err == nil && o.At >= 0 {
			committed = o.At
		}
		counts := map[string]int{}
		var seen []int64
		for _, v := range vals {
			counts[v]++
			if counts[v] == 1 {
				x, _ := strconv.ParseInt(v, 10, 64)
				seen = append(seen, x)
			}
		}
		sort.Slice(seen, func(i, j int) bool { return seen[i] < seen[j] })
		for i, x := range seen {
			if x != int64(i) || counts[strconv.FormatInt(x, 10)] != 2 {
				t.Fatalf("round %d: read_committed values %v are not 0..n-1, each on both partitions", round, vals)
			}
		}
		if int64(len(seen)) != committed {
			t.Fatalf("round %d: %d transactions visible read_committed (%v) but the group's committed offset is %d: a commit is half done", round, len(seen), seen, committed)
		}
		if committed < next+n {
			t.Fatalf("round %d: %d transactions acknowledged in all, only %d committed", round, next+n, committed)
		}
		next = committed
	}
}

// txnOffsetCommit adds grp to cl's transaction and commits offset for t-0
// in it.
func txnOffsetCommit(ctx context.Context, cl *kgo.Client, id, grp string, offset int64) error {
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		return err
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, grp
	addResp, err := add.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(addResp.ErrorCode); err != nil {
		return err
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = id, grp, pid, epoch
	commit.Generation = -1
	commit.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: offset, LeaderEpoch: -1}}}}
	resp, err := commit.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
}

// initTxnID runs InitProducerId for id as a new instance would, retrying
// while the coordinator finishes what it recovered.
func initTxnID(t *testing.T, addr, id string) {
	t.Helper()
	ctx := testCtx(t)
	cl := newClient(t, addr)
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = &id, 60000
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("InitProducerId after restart: %v %v", err, resp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var _ = kadm.Offsets{}

// KIP-360 across a crash: a producer with an open transaction asks for an
// epoch bump (InitProducerId with its producer id and epoch). The broker
// dies while aborting that transaction (fault point), so the request is
// never answered. After the restart the producer retries the very same
// request, as a client does when a request goes unanswered. No other
// instance ever existed: the retry must get a bumped pair, not
// PRODUCER_FENCED (fatal to the producer).
func TestKIP360BumpRetriedAcrossACrashIsNotFenced(t *testing.T) {
	for _, point := range []string{"txn.before-markers", "txn.before-complete"} {
		t.Run(point, func(t *testing.T) {
			const id = "tx-adv-kip360"
			dir := t.TempDir()
			p := startProc(t, "127.0.0.1:0", dir, "--unsafe-faults", point+"=exit")
			addr := p.addr
			createTopic(t, newAdmin(t, addr), "t", 1, nil)
			ctx := testCtx(t)
			cl := newClient(t, addr)
			initReq := func(pid int64, epoch int16) (*kmsg.InitProducerIDResponse, error) {
				tid := id
				req := kmsg.NewPtrInitProducerIDRequest()
				req.TransactionalID, req.TransactionTimeoutMillis = &tid, 60000
				req.ProducerID, req.ProducerEpoch = pid, epoch
				return req.RequestWith(ctx, cl)
			}
			first, err := initReq(-1, -1)
			if err != nil || first.ErrorCode != 0 {
				t.Fatal(err, first)
			}
			pid, epoch := first.ProducerID, first.ProducerEpoch
			add := kmsg.NewPtrAddPartitionsToTxnRequest()
			add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, pid, epoch
			add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			if r, err := add.RequestWith(ctx, cl); err != nil || r.Topics[0].Partitions[0].ErrorCode != 0 {
				t.Fatal(err, r)
			}
			// The bump; the broker exits at the fault point while aborting.
			bumpCl := newClient(t, addr, kgo.RequestRetries(0))
			go func() {
				tid := id
				req := kmsg.NewPtrInitProducerIDRequest()
				req.TransactionalID, req.TransactionTimeoutMillis = &tid, 60000
				req.ProducerID, req.ProducerEpoch = pid, epoch
				_, _ = req.RequestWith(ctx, bumpCl)
			}()
			p.waitExit()
			startProc(t, addr, dir)
			var resp *kmsg.InitProducerIDResponse
			for {
				resp, err = initReq(pid, epoch)
				if err == nil && resp.ErrorCode != kerr.CoordinatorNotAvailable.Code && resp.ErrorCode != kerr.ConcurrentTransactions.Code {
					break
				}
				if ctx.Err() != nil {
					t.Fatal(ctx.Err())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if resp.ErrorCode != 0 {
				t.Fatalf("retried InitProducerId(%d/%d) after the restart: %v; want a bumped pair", pid, epoch, kerr.ErrorForCode(resp.ErrorCode))
			}
			t.Logf("retry answered %d/%d", resp.ProducerID, resp.ProducerEpoch)
		})
	}
}

// A crash in the middle of an ABORT of a transaction carrying offsets of
// two groups on different __consumer_offsets partitions, after an earlier
// transaction of the same producer committed offsets for both: at restart
// the abort completes, the earlier offsets stay, the aborted ones never
// appear (not even as the outcome of a later commit of the producer), and
// only the committed records are visible.
func TestCrashMidAbortWithTwoGroupsKeepsEarlierOffsets(t *testing.T) {
	g1, g2 := "g-adv-a", ""
	for i := 0; ; i++ {
		g2 = "g-adv-b" + strconv.Itoa(i)
		if group.PartitionFor(g1, 50) != group.PartitionFor(g2, 50) {
			break
		}
	}
	for _, point := range []string{"txn.before-markers", "txn.before-complete"} {
		t.Run(point, func(t *testing.T) {
			const id = "tx-adv-abort"
			dir := t.TempDir()
			// The first completion (the commit) passes; the second exits.
			p := startProc(t, "127.0.0.1:0", dir, "--unsafe-faults", point+"=exit+1")
			addr := p.addr
			createTopic(t, newAdmin(t, addr), "t", 2, nil)
			ctx := testCtx(t)
			cl := txnProducer(t, addr, id)
			run := func(v string, off int64, commit bool) error {
				if err := cl.BeginTransaction(); err != nil {
					return err
				}
				for part := range int32(2) {
					if err := cl.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte(v)}).FirstErr(); err != nil {
						return err
					}
				}
				for _, g := range []string{g1, g2} {
					if err := txnOffsetCommit(ctx, cl, id, g, off); err != nil {
						return err
					}
				}
				return cl.EndTransaction(ctx, kgo.TransactionEndTry(commit))
			}
			if err := run("a", 10, true); err != nil {
				t.Fatal(err)
			}
			ended := make(chan error, 1)
			go func() { ended <- run("b", 20, false) }()
			p.waitExit()
			startProc(t, addr, dir)
			<-ended
			cl.Close()
			initTxnID(t, addr, id)
			check := func(wantOff int64, wantVals map[string]int) {
				t.Helper()
				adm := newAdmin(t, addr)
				for _, g := range []string{g1, g2} {
					offs, err := adm.FetchOffsets(ctx, g)
					if err != nil {
						t.Fatal(err)
					}
					if o, ok := offs.Lookup("t", 0); !ok || o.Err != nil || o.At != wantOff {
						t.Fatalf("group %s: offset %+v (found %v), want %d", g, o, ok, wantOff)
					}
				}
				vals := readAll(t, addr, "t", true)
				got := map[string]int{}
				for _, v := range vals {
					got[v]++
				}
				for v, n := range wantVals {
					if got[v] != n {
						t.Fatalf("read_committed %v, want %v", vals, wantVals)
					}
				}
				if len(got) != len(wantVals) {
					t.Fatalf("read_committed %v, want %v", vals, wantVals)
				}
			}
			check(10, map[string]int{"a": 2})
			// The producer's next transaction commits offsets of g1 only.
			cl2 := txnProducer(t, addr, id)
			cl = cl2
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			for part := range int32(2) {
				if err := cl.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte("c")}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			if err := txnOffsetCommit(ctx, cl, id, g1, 30); err != nil {
				t.Fatal(err)
			}
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			adm := newAdmin(t, addr)
			offs, err := adm.FetchOffsets(ctx, g2)
			if err != nil {
				t.Fatal(err)
			}
			if o, _ := offs.Lookup("t", 0); o.At != 10 {
				t.Fatalf("group %s after the next commit: %d, want 10 (20 was aborted)", g2, o.At)
			}
		})
	}
}
