package outbox

import (
	"context"
	"errors"
	"testing"
	"time"
)

// startRelayWith runs a relay whose crash points call hook.
func (e *env) startRelayWith(cfg RelayConfig, hook func(point string, b *batch)) *running {
	e.t.Helper()
	r, err := NewRelay(e.pool, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	r.crashAt = hook
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	e.t.Cleanup(func() { run.stop() })
	return run
}

// A process that registered an incarnation and then stalled before
// fencing Kafka (a long GC pause, a stopped VM) wakes up after a newer
// incarnation of its relay id took over. Its InitProducerId then fences
// the newer one at the transaction coordinator, although the database
// says the newer one is current. The stale process must stop (it cannot
// reconcile), and the current one must carry on: if both stopped, nobody
// would publish.
func TestStaleIncarnationWakingUpDoesNotStopTheCurrentRelay(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	cfg := e.config("z", 5)

	wake := make(chan struct{})
	stalled := make(chan struct{})
	var once bool
	stale := e.startRelayWith(cfg, func(point string, _ *batch) {
		if point == crashBeforeFence && !once {
			once = true
			close(stalled)
			<-wake
		}
	})
	select {
	case <-stalled:
	case <-ctx.Done():
		t.Fatal("stale relay never reached its fence")
	}

	current := e.startRelay(cfg)
	first := e.placeOrders(20)
	waitPublished(t, int64(len(first)), current)

	close(wake)
	select {
	case err := <-stale.done:
		stale.done <- err
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("stale relay returned %v, want ErrFenced", err)
		}
	case <-ctx.Done():
		t.Fatal("stale relay still running")
	}

	// The current relay was fenced in Kafka by the stale one; it must
	// publish what is written from now on.
	second := e.placeOrders(20)
	ids := append(first, second...)
	for {
		s := e.states(ctx)
		if s[StateSent] == len(ids) {
			break
		}
		select {
		case err := <-current.done:
			current.done <- err
			t.Fatalf("current relay stopped after a stale incarnation woke up: %v (rows %v)", err, s)
		case <-ctx.Done():
			t.Fatalf("rows not all sent: %v", s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := current.stop(); err != nil {
		t.Fatal(err)
	}
	e.assertExactlyOnce(ids)
}

// Two relays with one relay id on two databases (or two outbox tables)
// share a transactional id, and so fence each other in Kafka while each
// database names its own relay current. They must not fence each other
// back and forth for ever: one of them stops with ErrFenced, and the
// other publishes its outbox.
func TestRelaysSharingAnIDAcrossDatabasesDoNotFenceEachOtherForEver(t *testing.T) {
	a := newEnv(t)
	b := newEnvOn(t, a.brokers, "orders-b")
	ctx := testCtx(t)
	ra := a.startRelay(a.config("shared", 5))
	rb := b.startRelay(b.config("shared", 5))
	stop := make(chan struct{})
	writtenA := a.writeWhile(1, stop)
	writtenB := b.writeWhile(1, stop)
	var survivor *env
	var run *running
	select {
	case err := <-ra.done:
		ra.done <- err
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("relay a returned %v, want ErrFenced", err)
		}
		survivor, run = b, rb
	case err := <-rb.done:
		rb.done <- err
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("relay b returned %v, want ErrFenced", err)
		}
		survivor, run = a, ra
	case <-ctx.Done():
		t.Fatal("neither relay stopped: they fence each other for ever")
	}
	close(stop)
	idsA, idsB := writtenA(), writtenB()
	ids := idsB
	if survivor == a {
		ids = idsA
	}
	survivor.waitAllSent(len(ids))
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	survivor.assertExactlyOnce(ids)
}
