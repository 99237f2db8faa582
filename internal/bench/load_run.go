package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// loadRun is the shared state of one load run: the clock, the counters
// and histograms producers and consumers feed.
type loadRun struct {
	o        LoadOptions
	id       uint32
	start    time.Time
	warmupAt int64 // Unix nanoseconds: records sent from here on are measured
	endAt    int64 // Unix nanoseconds: producers stop sending here
	// started is set once the three above are, before any producer
	// starts; consumers, already polling, read them only after seeing it.
	started atomic.Bool

	e2e, ack, commits latencyHistogram
	// sendDelay is how late paced records were sent against their
	// schedule: the generator's own lag, which the latencies above do not
	// show because each record is stamped when it is actually sent.
	sendDelay latencyHistogram
	seconds   []loadSlot

	ackedAll, ackedWindow atomic.Int64 // acknowledged records, whole run and window
	failed                atomic.Int64
	firstErr              atomic.Pointer[error]

	seen                         *seenSet // guarded by seen.mu, as are the three below
	consumedAll, consumedWindow  int64
	duplicates                   int64
	consumedAllAtomic            atomic.Int64          // consumedAll, for the drain's polling
	assigned                     atomic.Int64          // partitions assigned across the group
	consumeErr                   atomic.Pointer[error] // the last error a poll returned
	payload                      payloadPool
	producersDone, consumersDone sync.WaitGroup
}

// loadSlot is one second of the timeline.
type loadSlot struct {
	acked, consumed atomic.Int64
	e2e             latencyHistogram
}

// slot returns the timeline slot of the Unix-nanosecond time t, the last
// slot for anything after it.
func (r *loadRun) slot(t int64) *loadSlot {
	i := int((t - r.start.UnixNano()) / int64(time.Second))
	return &r.seconds[min(max(i, 0), len(r.seconds)-1)]
}

// Load runs the workload o describes against brokers and returns its
// figures. The topic is created if missing. Consumers join one new group
// and are assigned every partition before the clock starts; they start at
// the records stamped from then on, so older records on the topic are not
// read. The run fails if the clients cannot be set up, if any record or
// commit fails, or if records acknowledged under acks=all are not all
// consumed within 30 s after the producers stop (the result is returned
// too).
func Load(ctx context.Context, brokers []string, o LoadOptions) (*LoadResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.AcksName = o.Acks.String()
	if !o.Transactional {
		o.CommitInterval = 0
	}
	partitions, err := prepareLoadTopic(ctx, brokers, o)
	if err != nil {
		return nil, err
	}
	o.Partitions = partitions
	pid := o.BrokerPID
	if pid == 0 {
		pid = localBrokerPID(brokers[0])
	}
	var idb [4]byte
	rand.Read(idb[:])
	r := &loadRun{o: o, id: binary.BigEndian.Uint32(idb[:]), seen: newSeenSet(o.Producers), payload: newPayloadPool(o.RecordSize)}
	total := o.Warmup + o.Duration + loadDrainTimeout
	r.seconds = make([]loadSlot, int(total/time.Second)+2)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	consumers, err := r.startConsumers(runCtx, brokers)
	defer func() {
		cancel()
		r.consumersDone.Wait()
		for _, cl := range consumers {
			cl.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	producers, err := r.newProducers(runCtx, brokers)
	defer func() {
		for _, cl := range producers {
			cl.Close()
		}
	}()
	if err != nil {
		return nil, err
	}

	r.start = time.Now()
	r.warmupAt = r.start.Add(o.Warmup).UnixNano()
	r.endAt = r.start.Add(o.Warmup + o.Duration).UnixNano()
	r.started.Store(true)
	var cpu cpuWindow
	if pid > 0 {
		cpu.measure(pid, r.start.Add(o.Warmup), r.start.Add(o.Warmup+o.Duration))
	}
	for i, cl := range producers {
		r.producersDone.Add(1)
		go r.produce(runCtx, i, cl)
	}
	r.producersDone.Wait()
	r.drain(ctx)

	res := r.result(brokers)
	if pid > 0 {
		if used, ok := cpu.used(); ok {
			res.BrokerPID, res.BrokerCPU = pid, used
			if res.Produced > 0 {
				res.BrokerCPUPerRecord = float64(used.Nanoseconds()) / float64(res.Produced)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.ProduceErrors > 0 {
		return res, fmt.Errorf("%d records (or commits) failed; the first: %s", res.ProduceErrors, res.FirstProduceError)
	}
	if res.Missing > 0 && o.Acks == AcksAll {
		return res, fmt.Errorf("%d acknowledged records were not consumed within %v after the producers stopped", res.Missing, loadDrainTimeout)
	}
	return res, nil
}

// prepareLoadTopic creates the topic if needed and returns its partition
// count once the cluster's metadata shows it.
func prepareLoadTopic(ctx context.Context, brokers []string, o LoadOptions) (int32, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, o.ClientOpts...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := EnsureTopic(ctx, cl, o.Topic, o.Partitions, -1); err != nil {
		return 0, err
	}
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(30 * time.Second)
	for {
		td, err := adm.ListTopics(ctx, o.Topic)
		if err == nil {
			if t, ok := td[o.Topic]; ok && t.Err == nil && len(t.Partitions) > 0 {
				return int32(len(t.Partitions)), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("topic %q has no partitions in the metadata after 30s (last error: %v)", o.Topic, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// newProducers builds the producer clients and gets each its producer id
// before the clock starts (for a transactional id the first
// InitProducerId may also create the transaction state topic).
func (r *loadRun) newProducers(ctx context.Context, brokers []string) ([]*kgo.Client, error) {
	o := r.o
	ackOpts, err := ProducerOpts(o.Acks, o.Idempotent)
	if err != nil {
		return nil, err
	}
	var clients []*kgo.Client
	for range o.Producers {
		opts := []kgo.Opt{
			kgo.SeedBrokers(brokers...),
			kgo.DefaultProduceTopic(o.Topic),
			kgo.ProducerLinger(o.Linger),
			kgo.ProducerBatchCompression(kgo.NoCompression()),
			// The producers share one client's buffer between them, so
			// many producers sending as fast as possible do not hold
			// gigabytes of records in the client.
			kgo.MaxBufferedRecords(max(DefaultMaxBufferedRecords/o.Producers, 10_000)),
		}
		opts = append(opts, ackOpts...)
		if o.Transactional {
			opts = append(opts, kgo.TransactionalID(benchTransactionalID()))
		}
		cl, err := kgo.NewClient(append(opts, o.ClientOpts...)...)
		if err != nil {
			return clients, err
		}
		clients = append(clients, cl)
		if o.Idempotent {
			if _, _, err := cl.ProducerID(ctx); err != nil {
				return clients, fmt.Errorf("init producer id: %w", err)
			}
		}
	}
	return clients, nil
}

// startConsumers starts the group's consumers and waits until the group
// has every partition assigned.
func (r *loadRun) startConsumers(ctx context.Context, brokers []string) ([]*kgo.Client, error) {
	o := r.o
	group := fmt.Sprintf("weir-bench-load-%08x", r.id)
	from := time.Now().UnixMilli()
	var clients []*kgo.Client
	for range o.Consumers {
		opts := []kgo.Opt{
			kgo.SeedBrokers(brokers...),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(o.Topic),
			// Start at the records stamped from now on: older ones
			// belong to earlier runs. A fresh group has no committed
			// offsets, so the reset decides.
			kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(from)),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				r.assigned.Add(int64(len(m[o.Topic])))
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				r.assigned.Add(-int64(len(m[o.Topic])))
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				r.assigned.Add(-int64(len(m[o.Topic])))
			}),
		}
		if o.Transactional {
			opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		}
		cl, err := kgo.NewClient(append(opts, o.ClientOpts...)...)
		if err != nil {
			return clients, err
		}
		clients = append(clients, cl)
		r.consumersDone.Add(1)
		go r.consume(ctx, cl)
	}
	deadline := time.Now().Add(loadJoinTimeout)
	for r.assigned.Load() < int64(o.Partitions) {
		// An error the client will not retry (an authorization
		// failure, say) ends the wait at once.
		var last error
		if p := r.consumeErr.Load(); p != nil {
			last = *p
			var ke *kerr.Error
			if errors.As(last, &ke) && !ke.Retriable {
				return clients, fmt.Errorf("consumer group %s: %w", group, last)
			}
		}
		if time.Now().After(deadline) {
			return clients, fmt.Errorf("consumer group %s was assigned %d of %d partitions after %v (last error: %v)", group, r.assigned.Load(), o.Partitions, loadJoinTimeout, last)
		}
		select {
		case <-ctx.Done():
			return clients, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return clients, nil
}

// consume polls until ctx ends, recording each record of this run once.
func (r *loadRun) consume(ctx context.Context, cl *kgo.Client) {
	defer r.consumersDone.Done()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		for _, fe := range fs.Errors() {
			if ctx.Err() == nil {
				err := fe.Err
				if fe.Topic != "" {
					err = fmt.Errorf("consume %s: %w", fe.Topic, fe.Err)
				}
				r.consumeErr.Store(&err)
			}
		}
		if !r.started.Load() {
			continue // no record of this run exists before the clock starts
		}
		now := time.Now().UnixNano()
		slot := r.slot(now)
		r.seen.mu.Lock()
		fs.EachRecord(func(rec *kgo.Record) {
			h, ok := parseLoadHeader(rec.Value)
			if !ok || h.run != r.id {
				return
			}
			if !r.seen.addLocked(h.producer, h.seq) {
				r.duplicates++
				return
			}
			r.consumedAll++
			slot.consumed.Add(1)
			lat := time.Duration(now - h.sentNanos)
			slot.e2e.Record(lat)
			if h.sentNanos >= r.warmupAt {
				r.consumedWindow++
				r.e2e.Record(lat)
			}
		})
		r.consumedAllAtomic.Store(r.consumedAll)
		r.seen.mu.Unlock()
	}
}

// produce sends this producer's share of the rate until the run's end,
// then flushes (and commits the last transaction).
func (r *loadRun) produce(ctx context.Context, idx int, cl *kgo.Client) {
	defer r.producersDone.Done()
	o := r.o
	perProducer := o.Rate / float64(o.Producers)
	end := time.Unix(0, r.endAt)
	var seq uint64
	var tick *time.Ticker
	if perProducer > 0 {
		tick = time.NewTicker(loadTick)
		defer tick.Stop()
	}
	lastCommit := r.start
	if o.Transactional {
		if err := cl.BeginTransaction(); err != nil {
			r.fail(err)
			return
		}
	}
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		if o.Transactional && now.Sub(lastCommit) >= o.CommitInterval {
			if !r.commit(ctx, cl, false) {
				return
			}
			lastCommit = time.Now()
		}
		if perProducer == 0 {
			r.send(ctx, cl, idx, seq)
			seq++
			continue
		}
		// Record k falls due at k/perProducer seconds after the start.
		due := uint64(now.Sub(r.start).Seconds()*perProducer) + 1
		for ; seq < due && ctx.Err() == nil; seq++ {
			if seq%64 == 0 && !time.Now().Before(end) {
				break
			}
			sent := r.send(ctx, cl, idx, seq)
			if sent >= r.warmupAt {
				scheduled := r.start.UnixNano() + int64(float64(seq)/perProducer*1e9)
				r.sendDelay.Record(time.Duration(sent - scheduled))
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	if o.Transactional {
		r.commit(ctx, cl, true)
		return
	}
	if err := cl.Flush(ctx); err != nil {
		r.fail(fmt.Errorf("flush: %w", err))
	}
}

// send hands one record to the client, stamped with the time now, and
// returns that time (Unix nanoseconds).
func (r *loadRun) send(ctx context.Context, cl *kgo.Client, idx int, seq uint64) int64 {
	v := make([]byte, r.o.RecordSize)
	copy(v[loadHeaderSize:], r.payload.value(int(seq))[loadHeaderSize:])
	sent := time.Now().UnixNano()
	loadHeader{sentNanos: sent, run: r.id, producer: uint32(idx), seq: seq}.put(v)
	cl.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
		if err != nil {
			r.fail(err)
			return
		}
		now := time.Now().UnixNano()
		r.ackedAll.Add(1)
		r.slot(now).acked.Add(1)
		if sent >= r.warmupAt {
			r.ackedWindow.Add(1)
			r.ack.Record(time.Duration(now - sent))
		}
	})
	return sent
}

// commit flushes and commits the open transaction, then begins the next
// unless last; it reports whether the producer may go on.
func (r *loadRun) commit(ctx context.Context, cl *kgo.Client, last bool) bool {
	t0 := time.Now()
	if err := cl.Flush(ctx); err != nil {
		r.fail(fmt.Errorf("flush: %w", err))
		return false
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		r.fail(fmt.Errorf("commit: %w", err))
		return false
	}
	if t0.UnixNano() >= r.warmupAt {
		r.commits.Record(time.Since(t0))
	}
	if last {
		return true
	}
	if err := cl.BeginTransaction(); err != nil {
		r.fail(err)
		return false
	}
	return true
}

func (r *loadRun) fail(err error) {
	if r.failed.Add(1) == 1 {
		r.firstErr.Store(&err)
	}
}

// drain waits, after the producers stop, until the consumers have every
// acknowledged record or loadDrainTimeout passes.
func (r *loadRun) drain(ctx context.Context) {
	deadline := time.Now().Add(loadDrainTimeout)
	for r.consumedAllAtomic.Load() < r.ackedAll.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// result gathers the figures; the consumers may still be polling, so the
// counts they own are read under their lock.
func (r *loadRun) result(brokers []string) *LoadResult {
	r.seen.mu.Lock()
	consumedWindow, duplicates := r.consumedWindow, r.duplicates
	r.seen.mu.Unlock()
	res := &LoadResult{
		Options:       r.o,
		Brokers:       brokers,
		Started:       r.start.UTC(),
		Measured:      r.o.Duration,
		Produced:      r.ackedWindow.Load(),
		Consumed:      consumedWindow,
		Duplicates:    duplicates,
		ProduceErrors: r.failed.Load(),
		EndToEnd:      percentilesOf(&r.e2e),
		Ack:           percentilesOf(&r.ack),
	}
	res.Missing = max(0, res.Produced-res.Consumed)
	if p := r.firstErr.Load(); p != nil {
		res.FirstProduceError = (*p).Error()
	}
	res.ProducedPerSec = perSec(float64(res.Produced), res.Measured)
	res.ConsumedPerSec = perSec(float64(res.Consumed), res.Measured)
	if r.o.Rate > 0 {
		d := percentilesOf(&r.sendDelay)
		res.SendDelay = &d
	}
	if r.o.Transactional {
		c := percentilesOf(&r.commits)
		res.Commits = &c
	}
	// The timeline runs to the last second with any traffic, and at
	// least to the end of the window.
	last := int((r.endAt-r.start.UnixNano())/int64(time.Second)) - 1
	for i := range r.seconds {
		if r.seconds[i].acked.Load() > 0 || r.seconds[i].consumed.Load() > 0 {
			last = max(last, i)
		}
	}
	for i := 0; i <= last && i < len(r.seconds); i++ {
		s := &r.seconds[i]
		res.Timeline = append(res.Timeline, LoadSecond{
			Second:   i,
			Warmup:   r.start.Add(time.Duration(i+1)*time.Second).UnixNano() <= r.warmupAt,
			Acked:    s.acked.Load(),
			Consumed: s.consumed.Load(),
			EndToEnd: percentilesOf(&s.e2e),
		})
	}
	return res
}

// cpuWindow samples a process's CPU time at the two ends of a window.
type cpuWindow struct {
	mu       sync.Mutex
	from, to time.Duration
	ok       bool
	done     chan struct{}
}

// measure samples pid at from and at to, in the background.
func (c *cpuWindow) measure(pid int, from, to time.Time) {
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		time.Sleep(time.Until(from))
		a, err := procCPU(pid)
		if err != nil {
			return
		}
		time.Sleep(time.Until(to))
		b, err := procCPU(pid)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.from, c.to, c.ok = a, b, err == nil
	}()
}

// used returns the CPU time used over the window, once both samples are
// taken.
func (c *cpuWindow) used() (time.Duration, bool) {
	if c.done == nil {
		return 0, false
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.to - c.from, c.ok
}
