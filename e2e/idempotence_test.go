package e2e

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/pkg/weir"
)

func startFaultyBroker(t *testing.T, spec string) (*weir.Broker, *faults.Injector) {
	t.Helper()
	inj, err := faults.Parse(spec, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, err := weir.Start(context.Background(), weir.Config{DataDir: t.TempDir(), Faults: inj})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, inj
}

// produceN sends n records with distinct values and waits for each to be
// acknowledged (retrying as the client sees fit).
func produceN(t *testing.T, cl *kgo.Client, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		wg.Add(1)
		cl.Produce(testCtx(t), &kgo.Record{Key: []byte(strconv.Itoa(i % 3)), Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("produce: %v", firstErr)
	}
}

// countValues tallies how often each value is stored and checks the
// values of each key arrive in production order.
func countValues(t *testing.T, recs []*kgo.Record) (counts map[int]int, reordered int) {
	counts = map[int]int{}
	last := map[string]int{}
	for _, r := range recs {
		v, _ := strconv.Atoi(string(r.Value))
		if prev, ok := last[string(r.Key)]; ok && v < prev && counts[v] == 0 {
			reordered++
		}
		last[string(r.Key)] = max(last[string(r.Key)], v)
		counts[v]++
	}
	return counts, reordered
}

// With lost acknowledgements (the broker appends, then drops the
// response and the connection), an idempotent producer's retries are
// recognised: every record is stored exactly once, in order per
// partition. Without idempotence the same faults store duplicates, which
// is what at-least-once means.
func TestLostAcksAreDeduplicatedOnlyWithIdempotence(t *testing.T) {
	const n = 5000
	for _, idempotent := range []bool{true, false} {
		name := "idempotent"
		if !idempotent {
			name = "at-least-once"
		}
		t.Run(name, func(t *testing.T) {
			b, inj := startFaultyBroker(t, "produce.response=drop@0.2")
			createTopic(t, newAdmin(t, b.Addr()), "t", 3, nil)
			opts := []kgo.Opt{kgo.DefaultProduceTopic("t"), kgo.RequiredAcks(kgo.AllISRAcks()),
				kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(1024)}
			if !idempotent {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			produceN(t, newClient(t, b.Addr(), opts...), n)
			if inj.Fired("produce.response") == 0 {
				t.Fatal("the lost-ack fault never fired")
			}
			hw := int64(0)
			ends, _ := newAdmin(t, b.Addr()).ListEndOffsets(testCtx(t), "t")
			ends.Each(func(o kadm.ListedOffset) { hw += o.Offset })
			counts, reordered := countValues(t, consumeAll(t, b.Addr(), "t", int(hw)))
			dups, lost := 0, 0
			for i := range n {
				switch c := counts[i]; {
				case c == 0:
					lost++
				case c > 1:
					dups += c - 1
				}
			}
			t.Logf("%d acknowledgements lost, %d duplicates, %d lost records, %d reordered", inj.Fired("produce.response"), dups, lost, reordered)
			if lost > 0 {
				t.Fatalf("%d acknowledged records lost", lost)
			}
			if idempotent && (dups > 0 || reordered > 0) {
				t.Fatalf("idempotent producer: %d duplicates, %d reordered", dups, reordered)
			}
			if !idempotent && dups == 0 {
				t.Fatalf("no duplicates despite %d lost acknowledgements without idempotence", inj.Fired("produce.response"))
			}
		})
	}
}

// A producer keeps writing while the broker crashes again and again at
// the worst moment, right after an append and before its acknowledgement
// (the produce.response=exit fault), and once more by SIGKILL. Its
// retries of the batches appended before each crash must be recognised
// from the recovered producer state: with idempotence every record is
// stored exactly once. Without it the same schedule stores duplicates,
// which shows the crashes hit batches in flight.
func TestIdempotentProducerAcrossCrashesStoresEachRecordOnce(t *testing.T) {
	for _, idempotent := range []bool{true, false} {
		t.Run(map[bool]string{true: "idempotent", false: "at-least-once"}[idempotent], func(t *testing.T) {
			counts, produced := produceThroughCrashes(t, idempotent)
			dups := 0
			for v := range produced {
				switch c := counts[v]; {
				case c == 0:
					t.Fatalf("acknowledged value %d lost", v)
				case c > 1:
					dups += c - 1
				}
			}
			t.Logf("%d records, %d duplicates", produced, dups)
			if idempotent && dups > 0 {
				t.Fatalf("idempotent producer stored %d duplicates", dups)
			}
			if !idempotent && dups == 0 {
				t.Fatal("no duplicates without idempotence: the crashes did not hit batches in flight")
			}
		})
	}
}

// produceThroughCrashes produces while the broker (the weir binary)
// crashes three times after an append and is SIGKILLed once, restarting
// it each time; it returns how often each value is stored.
func produceThroughCrashes(t *testing.T, idempotent bool) (map[int]int, int) {
	dir := t.TempDir()
	p := startProc(t, "127.0.0.1:0", dir)
	addr := p.addr
	createTopic(t, newAdmin(t, addr), "t", 2, nil)
	opts := []kgo.Opt{kgo.DefaultProduceTopic("t"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(2048), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond })}
	if !idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl := newClient(t, addr, opts...)

	// Produce without pause until the crashes are over, so every crash
	// meets batches in flight.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
		acked    int
		n        int
	)
	stop := make(chan struct{})
	producing := make(chan struct{})
	go func() {
		defer close(producing)
		for {
			select {
			case <-stop:
				return
			default:
			}
			v := n
			n++
			wg.Add(1)
			cl.Produce(context.Background(), &kgo.Record{Key: []byte(strconv.Itoa(v % 7)), Value: []byte(strconv.Itoa(v))}, func(_ *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
					return
				}
				acked++
			})
		}
	}()
	for _, skip := range []int{10, 25, 40} {
		p.kill()
		p = startProc(t, addr, dir, "--unsafe-faults", "produce.response=exit+"+strconv.Itoa(skip))
		p.waitExit()
	}
	p = startProc(t, addr, dir)
	ackedNow := func() int { mu.Lock(); defer mu.Unlock(); return acked }
	for base := ackedNow(); ackedNow() < base+1000; {
		time.Sleep(5 * time.Millisecond) // until the restarted broker has acknowledged more
	}
	p.kill() // SIGKILL with requests in flight
	startProc(t, addr, dir)
	close(stop)
	<-producing
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d records failed, first: %v", len(failures), failures[0])
	}
	hw := int64(0)
	ends, _ := newAdmin(t, addr).ListEndOffsets(testCtx(t), "t")
	ends.Each(func(o kadm.ListedOffset) { hw += o.Offset })
	counts, reordered := countValues(t, consumeAll(t, addr, "t", int(hw)))
	if idempotent && reordered > 0 {
		t.Fatalf("%d records reordered", reordered)
	}
	return counts, n
}

// The producer state survives a restart, clean or after SIGKILL: a retry
// of a batch acknowledged before the restart is answered with its
// original offset and not stored again.
func TestRetryAfterRestartIsRecognised(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "clean", true: "sigkill"}[crash], func(t *testing.T) {
			dir := t.TempDir()
			p := startProc(t, "127.0.0.1:0", dir)
			createTopic(t, newAdmin(t, p.addr), "t", 1, nil)
			pid := initProducerID(t, p.addr)
			b0 := idempotentBatch(pid, 0, "a")
			b1 := idempotentBatch(pid, 1, "b")
			conn := dialRaw(t, p.addr)
			if code := produceErr(t, conn, "t", b0); code != 0 {
				t.Fatalf("first append: %d", code)
			}
			if code := produceErr(t, conn, "t", b1); code != 0 {
				t.Fatalf("second append: %d", code)
			}
			if crash {
				p.kill()
			} else if err := p.stop(); err != nil {
				t.Fatal(err)
			}
			p = startProc(t, p.addr, dir)
			conn = dialRaw(t, p.addr)
			req := produceReq("t", idempotentBatch(pid, 0, "a"))
			id := conn.send(req)
			resp := req.ResponseKind().(*kmsg.ProduceResponse)
			conn.recv(resp, id)
			rp := resp.Topics[0].Partitions[0]
			if rp.ErrorCode != 0 || rp.BaseOffset != 0 {
				t.Fatalf("retry after restart: error %d, base offset %d", rp.ErrorCode, rp.BaseOffset)
			}
			if end := endOffset(t, p.addr, "t"); end != 2 {
				t.Fatalf("log end %d after a retried batch, want 2", end)
			}
			// And the sequence continues where it was.
			if code := produceErr(t, conn, "t", idempotentBatch(pid, 5, "gap")); code != 45 {
				t.Fatalf("sequence gap after restart: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", code)
			}
		})
	}
}

func initProducerID(t *testing.T, addr string) int64 {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	resp, err := req.RequestWith(testCtx(t), newClient(t, addr))
	if err != nil {
		t.Fatalf("InitProducerId: %v", err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: error %d", resp.ErrorCode)
	}
	return resp.ProducerID
}

func idempotentBatch(pid int64, seq int32, value string) []byte {
	return batch.Build(batch.Spec{Timestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq},
		[]batch.Record{{Value: []byte(value)}})
}

// Producer ids are never handed out twice, across restarts too.
func TestProducerIDsAreUniqueAcrossRestarts(t *testing.T) {
	b, dir := startBroker(t, nil)
	seen := map[int64]bool{}
	for range 3 {
		for range 5 {
			id := initProducerID(t, b.Addr())
			if seen[id] {
				t.Fatalf("producer id %d handed out twice", id)
			}
			seen[id] = true
		}
		b.Close()
		b = startBrokerIn(t, dir, nil)
	}
}

// DescribeProducers (KIP-664) lists each partition's producers with epoch
// and last sequence.
func TestDescribeProducersShowsTheProducerState(t *testing.T) {
	b, _ := startBroker(t, nil)
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "t", 1, nil)
	pid := initProducerID(t, b.Addr())
	conn := dialRaw(t, b.Addr())
	for seq := range int32(3) {
		if code := produceErr(t, conn, "t", idempotentBatch(pid, seq, "x")); code != 0 {
			t.Fatalf("append %d: %d", seq, code)
		}
	}
	described, err := adm.DescribeProducers(testCtx(t), kadm.TopicsSet{"t": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	described.EachProducer(func(p kadm.DescribedProducer) {
		if p.ProducerID == pid {
			found = true
			if p.ProducerEpoch != 0 || p.LastSequence != 2 {
				t.Fatalf("producer %+v", p)
			}
		}
	})
	if !found {
		t.Fatalf("producer %d not described", pid)
	}
}

// librdkafka's idempotent producer (kcat -X enable.idempotence=true)
// works against Weir.
func TestKcatIdempotentProducer(t *testing.T) {
	b, _ := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "ki", 1, nil)
	var in strings.Builder
	for i := range 200 {
		in.WriteString(strconv.Itoa(i) + "\n")
	}
	out, err := runKcat(t, in.String(), "-P", "-b", b.Addr(), "-t", "ki", "-X", "enable.idempotence=true")
	if err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	recs := consumeAll(t, b.Addr(), "ki", 200)
	for i, r := range recs {
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d holds %q", i, r.Value)
		}
	}
	described, err := newAdmin(t, b.Addr()).DescribeProducers(testCtx(t), kadm.TopicsSet{"ki": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	described.EachProducer(func(kadm.DescribedProducer) { n++ })
	if n != 1 {
		t.Fatalf("%d producers described after an idempotent kcat run, want 1", n)
	}
}
