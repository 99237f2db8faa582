package outbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/weir"
)

// startFastAbortBroker starts a broker that aborts timed-out transactions
// within 50ms of their timeout, and returns its address.
func startFastAbortBroker(t *testing.T) string {
	t.Helper()
	b, err := weir.Start(testCtx(t), weir.Config{DataDir: t.TempDir(), Settings: map[string]string{
		"transaction.abort.timed.out.transaction.cleanup.interval.ms": "50",
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addr()
}

// waitTxnAborted polls until the coordinator has aborted the open
// transaction of txnID.
func waitTxnAborted(ctx context.Context, t *testing.T, adm *kadm.Client, txnID string) {
	t.Helper()
	for {
		d, err := adm.DescribeTransactions(ctx, txnID)
		if err == nil {
			if tx, ok := d[txnID]; ok && tx.Err == nil && (tx.State == "PrepareAbort" || tx.State == "CompleteAbort") {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Errorf("transaction %s not aborted by the coordinator: %v", txnID, ctx.Err())
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// A Kafka transaction that outlives its timeout is aborted by the
// coordinator, which bumps the producer epoch: the relay's commit then
// fails as if fenced. No other relay took over the id, so the relay must
// start over (reconcile, publish again), not stop with ErrFenced.
func TestRelayWhoseTransactionTimedOutCarriesOn(t *testing.T) {
	e := newEnvOn(t, startFastAbortBroker(t), "orders")
	ids := e.placeOrders(5)
	cfg := e.config("slow", 10)
	cfg.TxnTimeout = MinTxnTimeout
	r, err := NewRelay(e.pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	adm := kadm.NewClient(e.client())
	stalled := false
	r.crashAt = func(point string, b *batch) {
		if point != crashBeforeCommit || stalled {
			return
		}
		stalled = true // only the first batch outlives its timeout
		waitTxnAborted(ctx, t, adm, TransactionalIDPrefix+cfg.RelayID)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	for {
		s := e.states(ctx)
		if s[StateSent] == len(ids) {
			break
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("relay stopped after its transaction timed out: %v (rows %v)", err, s)
		case <-ctx.Done():
			t.Fatalf("rows not all sent: %v", s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !stalled {
		t.Fatal("no batch reached the point before its commit")
	}
	e.assertExactlyOnce(ids)
}

// Every transaction timeout NewRelay accepts must give a Kafka client
// that starts: the client refuses a record delivery timeout under a
// second, and the relay derives that from the transaction timeout.
func TestEveryAcceptedTxnTimeoutMakesAUsableClient(t *testing.T) {
	e := newEnv(t)
	for _, d := range []time.Duration{time.Second, 1500 * time.Millisecond, 2 * time.Second, DefaultTxnTimeout} {
		cfg := e.config("t", 1)
		cfg.TxnTimeout = d
		r, err := NewRelay(e.pool, cfg)
		if err != nil {
			if !strings.Contains(err.Error(), "transaction timeout") {
				t.Errorf("TxnTimeout %v: refused with %v, want an error naming the transaction timeout", d, err)
			}
			continue
		}
		cl, err := kgo.NewClient(r.clientOpts()...)
		if err != nil {
			t.Errorf("TxnTimeout %v accepted by NewRelay, but its client fails: %v", d, err)
			continue
		}
		cl.Close()
	}
}
