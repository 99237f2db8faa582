package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/faults"
)

// While one transaction's markers are being written (slowly: the fault
// point delays the write as a slow fsync would), requests must not wait
// for them beyond the coordinator's one-second bound (maxSettleWait):
// the same id's next AddPartitionsToTxn is answered, with
// CONCURRENT_TRANSACTIONS if need be; other transactional ids, which have
// nothing to do with that transaction, are served at once; and
// Broker.Close does not wait for the write.
func TestSlowMarkerWriteDoesNotStallOtherRequestsOrShutdown(t *testing.T) {
	const delay = 8 * time.Second
	in, err := faults.Parse(fmt.Sprintf("txn.before-markers=delay:%s#1", delay), 1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := openAdvBrokerWith(t, t.TempDir(), nil, in)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl := newClient(t, a.addr)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	pidA, epochA := initProducer(ctx, t, cl, "A")
	pidC, epochC := initProducer(ctx, t, cl, "C")
	for _, p := range []struct {
		id  string
		pid int64
		ep  int16
	}{{"A", pidA, epochA}, {"C", pidC, epochC}} {
		if code := addPartition(ctx, t, cl, p.id, p.pid, p.ep, "t", 0); code != 0 {
			t.Fatal(kerr.ErrorForCode(code))
		}
	}
	if code := endTxn(ctx, t, cl, "A", pidA, epochA, true); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	time.Sleep(100 * time.Millisecond) // the completion is under way, in its delay

	type result struct {
		what string
		took time.Duration
		code int16
	}
	results := make(chan result, 4)
	timed := func(what string, f func(cl *kgo.Client) int16) {
		c := newClient(t, a.addr)
		go func() {
			start := time.Now()
			code := f(c)
			results <- result{what, time.Since(start), code}
		}()
	}
	timed("AddPartitionsToTxn of A's next transaction", func(c *kgo.Client) int16 {
		return addPartition(ctx, t, c, "A", pidA, epochA, "t", 0)
	})
	timed("InitProducerId of an unrelated id B", func(c *kgo.Client) int16 {
		id := "B"
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = &id, 60000
		resp, err := req.RequestWith(ctx, c)
		if err != nil {
			return -1
		}
		return resp.ErrorCode
	})
	timed("transactional produce of an unrelated id C", func(c *kgo.Client) int16 {
		id := "C"
		return produceRaw(ctx, t, c, &id, "t", batch.Spec{Attributes: batch.AttrTransactional, ProducerID: pidC, ProducerEpoch: epochC, BaseSequence: 0}, "c")
	})
	for range 3 {
		r := <-results
		t.Logf("%s: %v after %v", r.what, kerr.ErrorForCode(r.code), r.took.Round(time.Millisecond))
		if r.took > 3*time.Second {
			t.Errorf("%s waited %v for another transaction's marker write (bound: 1s)", r.what, r.took.Round(time.Millisecond))
		}
	}

	// Shutdown while a (second) slow completion is in progress.
	in2, _ := faults.Parse(fmt.Sprintf("txn.before-markers=delay:%s#1", delay), 1)
	b, err := openAdvBrokerWith(t, t.TempDir(), nil, in2)
	if err != nil {
		t.Fatal(err)
	}
	cl2 := newClient(t, b.addr)
	if _, err := kadm.NewClient(cl2).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	p2, e2 := initProducer(ctx, t, cl2, "A")
	if code := addPartition(ctx, t, cl2, "A", p2, e2, "t", 0); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := endTxn(ctx, t, cl2, "A", p2, e2, false); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	b.close()
	took := time.Since(start)
	t.Logf("Broker.Close during a slow completion took %v", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("Broker.Close waited %v for a transaction's marker write", took.Round(time.Millisecond))
	}
}
