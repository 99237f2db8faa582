package lab

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// valueSize pads record values so that batches stay small and a run
// makes many produce requests for the faults to hit.
const valueSize = 100

// batchMaxBytes keeps produce batches to a dozen records or so.
const batchMaxBytes = 1500

// txnRecords is how many records one producer transaction carries.
const txnRecords = 100

// recordValue is the id, then padding.
func recordValue(id int64) []byte {
	v := make([]byte, valueSize)
	n := copy(v, strconv.FormatInt(id, 10))
	for i := n; i < len(v); i++ {
		v[i] = ' '
	}
	return v
}

// parseID reads the id at the start of a record value.
func parseID(v []byte) int64 {
	n := 0
	for n < len(v) && v[n] >= '0' && v[n] <= '9' {
		n++
	}
	id, err := strconv.ParseInt(string(v[:n]), 10, 64)
	if err != nil {
		return -1
	}
	return id
}

// clientTimeouts keep a lost acknowledgement from stalling a scenario:
// the client gives up on a request within a couple of seconds and
// retries it.
func clientTimeouts() []kgo.Opt {
	return []kgo.Opt{
		kgo.ProduceRequestTimeout(2 * time.Second),
		kgo.RequestTimeoutOverhead(2 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.DialTimeout(2 * time.Second),
		// A restarted broker is found again at once, not after the
		// default five seconds.
		kgo.MetadataMinAge(50 * time.Millisecond),
	}
}

// createTopic makes the scenario's topic.
func createTopic(ctx context.Context, bk brokers, topic string, partitions int32) error {
	cl, err := bk.client(clientTimeouts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// runProducer sends Records records with mode under the fault, then
// reads the topic back.
func runProducer(ctx context.Context, e *env, mode producerMode) (*measure, error) {
	kill := len(e.kills) > 0
	bk, b, err := e.cluster(ctx, e.spec)
	if err != nil {
		return nil, err
	}
	if b != nil {
		defer b.stop()
	}
	if err := createTopic(ctx, bk, e.topic, e.cfg.Partitions); err != nil {
		return nil, err
	}
	n := e.cfg.Records
	h := History{Sent: n, Acked: make([]bool, n)}
	lat := make([]time.Duration, n)

	// Broker kills happen when the acknowledged count passes seeded points.
	var killAt []int64
	for _, k := range e.kills {
		killAt = append(killAt, int64(k))
	}
	killDone := make(chan error, 1)
	killCh := make(chan struct{}, len(killAt))
	if kill {
		go func() {
			var err error
			for range killAt {
				select {
				case <-killCh:
				case <-ctx.Done():
					killDone <- nil
					return
				}
				b.kill()
				if err = b.restart(ctx); err != nil {
					break
				}
			}
			killDone <- err
		}()
	}
	var (
		acked             atomic.Int64
		ackMu             sync.Mutex
		firstAck, lastAck time.Time
	)
	onAck := func() {
		now := time.Now()
		ackMu.Lock()
		if firstAck.IsZero() {
			firstAck = now
		}
		lastAck = now
		ackMu.Unlock()
		c := acked.Add(1)
		for _, k := range killAt {
			if c == k {
				killCh <- struct{}{}
			}
		}
	}

	opts := bk.opts(append([]kgo.Opt{
		kgo.DefaultProduceTopic(e.topic),
		// As Kafka's producer does; against an external cluster its
		// auto.create.topics.enable decides.
		kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(mode.acks),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(batchMaxBytes),
		kgo.RecordDeliveryTimeout(40 * time.Second),
	}, clientTimeouts()...)...)
	if !mode.idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	var dialer *faultDialer
	if e.clientFault != noClientFault {
		dialer = newFaultDialer(e.clientFault, e.faultSeed)
		opts = append(opts, kgo.Dialer(dialer.dial))
	}
	start := time.Now()
	var notes []string
	if mode.transactional {
		notes, err = produceTransactional(ctx, e, opts, &h, lat, onAck)
	} else {
		err = producePlain(ctx, e, opts, &h, lat, onAck)
	}
	elapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	if kill {
		// Kills not reached (too few acknowledgements) still count.
		for range killAt {
			select {
			case killCh <- struct{}{}:
			default:
			}
		}
		if err := <-killDone; err != nil {
			return nil, fmt.Errorf("restart broker: %w", err)
		}
		notes = append(notes, fmt.Sprintf("broker SIGKILLed and restarted %d×", b.kills))
	}
	if dialer != nil {
		notes = append(notes, fmt.Sprintf("%d produce requests hit on the client side", dialer.firedCount()))
	}
	m := &measure{notes: notes}
	// The rate runs from the first acknowledgement to the last, so that
	// connecting and the producer id handshake do not weigh on a short
	// run; faults and kills in between count in full.
	if n := acked.Load(); n > 1 && lastAck.After(firstAck) {
		m.throughput = float64(n-1) / lastAck.Sub(firstAck).Seconds()
	} else if elapsed > 0 {
		m.throughput = float64(n) / elapsed.Seconds()
	}
	m.p50, m.p99 = percentiles(lat, h.Acked)
	log, err := readBack(ctx, bk, e.topic, e.cfg.Partitions)
	if err != nil {
		return nil, err
	}
	h.Delivered, h.Fates = log.delivered, log.fates
	if mode.transactional {
		m.notes = append(m.notes, log.fateNote())
	}
	m.history = h
	return m, nil
}

// produceRecord builds the record of id: partition id mod partitions, so
// each partition's ids increase in send order.
func produceRecord(e *env, id int) *kgo.Record {
	return &kgo.Record{Value: recordValue(int64(id)), Partition: int32(id) % e.cfg.Partitions}
}

// producePlain sends every record once through one client and waits for
// every promise.
func producePlain(ctx context.Context, e *env, opts []kgo.Opt, h *History, lat []time.Duration, onAck func()) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var mu sync.Mutex
	for id := 0; id < h.Sent; id++ {
		sent := time.Now()
		cl.Produce(ctx, produceRecord(e, id), func(_ *kgo.Record, err error) {
			if err != nil {
				return
			}
			mu.Lock()
			h.Acked[id], lat[id] = true, time.Since(sent)
			mu.Unlock()
			onAck()
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// produceTransactional sends the records in transactions of txnRecords.
// A transaction that aborts is sent again in a new one; one whose commit
// outcome is unknown is not, and its records count as unacknowledged.
func produceTransactional(ctx context.Context, e *env, opts []kgo.Opt, h *History, lat []time.Duration, onAck func()) ([]string, error) {
	opts = append(opts, kgo.TransactionalID("weir-lab-"+e.topic), kgo.TransactionTimeout(10*time.Second))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer func() { cl.Close() }()
	aborts, unknown := 0, 0
	for first := 0; first < h.Sent; first += txnRecords {
		last := min(first+txnRecords, h.Sent)
		for attempt := 0; ; attempt++ {
			if attempt == 5 {
				return nil, fmt.Errorf("transaction of records %d-%d aborted %d times", first, last-1, attempt)
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			committed, known, err := oneTransaction(ctx, cl, e, first, last, h, lat, onAck)
			if committed {
				break
			}
			if err != nil {
				// The client may be fenced or stuck: a new one bumps the
				// epoch and aborts whatever the old one left open.
				cl.Close()
				if cl, err = kgo.NewClient(opts...); err != nil {
					return nil, err
				}
			}
			if !known {
				unknown++
				break
			}
			aborts++
		}
	}
	return []string{fmt.Sprintf("%d transactions aborted and retried, %d with unknown outcome", aborts, unknown)}, nil
}

// oneTransaction sends records [first, last) in a transaction. committed
// reports a commit; known is false when a commit was attempted and its
// outcome is unknown.
func oneTransaction(ctx context.Context, cl *kgo.Client, e *env, first, last int, h *History, lat []time.Duration, onAck func()) (committed, known bool, err error) {
	if err := cl.BeginTransaction(); err != nil {
		return false, true, err
	}
	sent := time.Now()
	var failed atomic.Bool
	for id := first; id < last; id++ {
		cl.Produce(ctx, produceRecord(e, id), func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Store(true)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		failed.Store(true)
	}
	commit := !failed.Load()
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		if commit {
			return false, false, err
		}
		return false, true, err
	}
	if !commit {
		return false, true, nil
	}
	d := time.Since(sent)
	for id := first; id < last; id++ {
		h.Acked[id], lat[id] = true, d
		onAck()
	}
	return true, true, nil
}

// percentiles gives the median and 99th percentile of the latencies of
// acknowledged records.
func percentiles(lat []time.Duration, acked []bool) (p50, p99 time.Duration) {
	var ds []time.Duration
	for i, d := range lat {
		if acked[i] {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)]
}
