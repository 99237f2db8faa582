package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// clusterRate is the broker-layer producer's pace, records per second:
// steady writes through the whole fault, so that every moment of it is
// measured.
const clusterRate = 200

// clusterDeliveryTimeout is how long the producer retries a record before
// it gives up: an outage longer than this shows as failed records.
const clusterDeliveryTimeout = 5 * time.Second

// pacedProducer writes records 0, 1, 2, ... to partition 0 at clusterRate
// until stopped, and keeps what became of each.
type pacedProducer struct {
	cl *kgo.Client

	mu        sync.Mutex
	sent      int
	acked     []bool
	lat       []time.Duration
	failed    map[string]int
	first     time.Time
	last      time.Time
	stall     time.Duration // longest time without an acknowledgement
	stop      chan struct{}
	done      chan struct{}
	sendStart time.Time
}

func startPacedProducer(ctx context.Context, bk brokers, topic, clientID string, acks kgo.Acks) (*pacedProducer, error) {
	cl, err := bk.client(append([]kgo.Opt{
		kgo.ClientID(clientID),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(acks),
		kgo.DisableIdempotentWrite(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(batchMaxBytes),
		kgo.RecordDeliveryTimeout(clusterDeliveryTimeout),
	}, clientTimeouts()...)...)
	if err != nil {
		return nil, err
	}
	p := &pacedProducer{cl: cl, failed: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run(ctx)
	return p, nil
}

func (p *pacedProducer) run(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(time.Second / clusterRate)
	defer tick.Stop()
	p.sendStart = time.Now()
	for id := 0; ; id++ {
		select {
		case <-p.stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.mu.Lock()
		p.sent++
		p.acked = append(p.acked, false)
		p.lat = append(p.lat, 0)
		p.mu.Unlock()
		sent := time.Now()
		p.cl.Produce(ctx, &kgo.Record{Value: recordValue(int64(id)), Partition: 0}, func(_ *kgo.Record, err error) {
			now := time.Now()
			p.mu.Lock()
			defer p.mu.Unlock()
			if err != nil {
				p.failed[clientErrorName(err)]++
				return
			}
			p.acked[id], p.lat[id] = true, now.Sub(sent)
			from := p.last
			if from.IsZero() {
				from, p.first = p.sendStart, now
			}
			p.stall = max(p.stall, now.Sub(from))
			p.last = now
		})
	}
}

// finish stops sending and waits for every record's outcome.
func (p *pacedProducer) finish(ctx context.Context) error {
	close(p.stop)
	<-p.done
	fctx, cancel := context.WithTimeout(ctx, clusterDeliveryTimeout+10*time.Second)
	defer cancel()
	err := p.cl.Flush(fctx)
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// clientErrorName names a record's final error.
func clientErrorName(err error) string {
	switch {
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "delivery timeout"
	case errors.Is(err, kgo.ErrRecordRetries):
		return "retries exhausted"
	}
	return errorName(err)
}

// countsText is "NAME ×N, NAME ×M" by decreasing count.
func countsText(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if m[names[i]] != m[names[j]] {
			return m[names[i]] > m[names[j]]
		}
		return names[i] < names[j]
	})
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// runClusterRow runs one broker-layer row: a fresh three-node cluster, a
// topic with the row's settings, the paced producer through the row's
// fault, then the topic read back.
func runClusterRow(ctx context.Context, e *env, m clusterMode, fault string) (*measure, error) {
	clientID := "weir-lab-" + e.topic
	tally := newErrorTally(clientID)
	lc, err := startCluster(ctx, e.cfg.Exe, e.workDir+"/cluster", e.cfg.Cluster, tally)
	if err != nil {
		return nil, err
	}
	defer lc.stop()
	if err := lc.createTopic(ctx, e.topic, m.minISR, m.unclean); err != nil {
		return nil, err
	}
	st, _ := lc.state(ctx, e.topic)
	leader := nodeIndex(st.Leader)
	var followers []int
	for i := range lc.admin {
		if i != leader {
			followers = append(followers, i)
		}
	}
	p, err := startPacedProducer(ctx, brokers{addrs: lc.seeds()}, e.topic, clientID, m.acks)
	if err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, time.Duration(e.kills[0])*time.Millisecond); err != nil {
		p.finish(ctx)
		return nil, err
	}
	f := &faultRun{ctx: ctx, lc: lc, topic: e.topic}
	var ferr error
	switch fault {
	case faultLeaderKilled:
		ferr = f.leaderKilled(leader)
	case faultLeaderFrozen:
		ferr = f.leaderFrozen(leader)
	case faultFollowersLag:
		ferr = f.followersLag(leader, followers)
	case faultTwoLost:
		ferr = f.twoLost(leader, followers)
	}
	if ferr == nil {
		// A last second of writes shows whether the partition took
		// them again.
		ferr = sleepCtx(ctx, time.Second)
	}
	if err := p.finish(ctx); err != nil && ferr == nil {
		ferr = err
	}
	if ferr != nil {
		return nil, ferr
	}
	p.mu.Lock()
	h := History{Sent: p.sent, Acked: slices.Clone(p.acked)}
	lat := slices.Clone(p.lat)
	meas := &measure{notes: f.notes, refused: tally.snapshot(), failed: p.failed, stall: p.stall}
	if n := countTrue(h.Acked); n > 1 && p.last.After(p.first) {
		meas.throughput = float64(n-1) / p.last.Sub(p.first).Seconds()
	}
	p.mu.Unlock()
	meas.p50, meas.p99 = percentiles(lat, h.Acked)
	log, err := readBack(ctx, brokers{addrs: lc.seeds()}, e.topic, 1)
	if err != nil {
		return nil, err
	}
	h.Delivered, h.Fates = log.delivered, log.fates
	meas.history = h
	return meas, nil
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// faultRun plays one fault against the cluster and notes what the
// partition did.
type faultRun struct {
	ctx   context.Context
	lc    *labCluster
	topic string
	notes []string
}

func (f *faultRun) note(format string, args ...any) {
	f.notes = append(f.notes, fmt.Sprintf(format, args...))
}

// await waits for cond and notes how long it took, or that it did not
// happen; only the context ending is an error.
func (f *faultRun) await(within time.Duration, what string, cond func(partState) bool) (partState, bool, error) {
	start := time.Now()
	st, err := f.lc.waitPartition(f.ctx, f.topic, within, what, cond)
	switch {
	case errors.Is(err, errNotReached):
		f.note("%s: not within %.0fs (%v)", what, within.Seconds(), st)
		return st, false, nil
	case err != nil:
		return st, false, err
	}
	f.note("%s after %.1fs", what, time.Since(start).Seconds())
	return st, true, nil
}

// newLeader is a condition: a leader other than node i.
func newLeader(i int) func(partState) bool {
	return func(st partState) bool { return st.Leader >= 0 && nodeIndex(st.Leader) != i }
}

// fullISR is a condition: a leader and every replica in sync.
func (f *faultRun) fullISR(st partState) bool {
	return st.Leader >= 0 && len(st.ISR) == len(f.lc.admin)
}

func (f *faultRun) leaderKilled(leader int) error {
	f.note("node %d (leader) SIGKILLed", leader+1)
	f.lc.kill(leader)
	if _, _, err := f.await(10*clusterSession, "another replica leads", newLeader(leader)); err != nil {
		return err
	}
	if err := f.lc.restart(leader); err != nil {
		return err
	}
	_, _, err := f.await(30*time.Second, "ISR full again", f.fullISR)
	return err
}

func (f *faultRun) leaderFrozen(leader int) error {
	f.note("node %d (leader) SIGSTOPped", leader+1)
	if err := f.lc.freeze(leader); err != nil {
		return err
	}
	_, _, err := f.await(10*clusterSession, "another replica leads", newLeader(leader))
	if err != nil {
		f.lc.thaw(leader)
		return err
	}
	if err := f.lc.thaw(leader); err != nil {
		return err
	}
	f.note("node %d SIGCONTed", leader+1)
	_, _, err = f.await(30*time.Second, "ISR full again", f.fullISR)
	return err
}

func (f *faultRun) followersLag(leader int, followers []int) error {
	f.lc.cutReplication(leader, followers...)
	f.note("replication to nodes %d and %d cut", followers[0]+1, followers[1]+1)
	alone := []int32{int32(leader + 1)}
	// replica.lag.time.max.ms is 1.5s: four times that is ample.
	before, _, err := f.await(6*time.Second, "ISR shrunk to the leader", func(st partState) bool { return slices.Equal(st.ISR, alone) })
	if err != nil {
		return err
	}
	// Writes the leader alone takes (acks=1, or acks=all with
	// min.insync.replicas=1) and the refusals of the rest.
	if err := sleepCtx(f.ctx, 1500*time.Millisecond); err != nil {
		return err
	}
	f.lc.kill(leader)
	f.note("node %d (leader) SIGKILLed", leader+1)
	st, led, err := f.await(3*clusterSession+2*time.Second, "a follower leads", newLeader(leader))
	if err != nil {
		return err
	}
	switch {
	case led && !slices.Contains(before.ISR, st.Leader):
		f.note("node %d was elected from outside the ISR %v (unclean election)", st.Leader, before.ISR)
	case led:
		f.note("node %d was elected from the ISR %v (clean election)", st.Leader, before.ISR)
	}
	f.note("%d replication fetches refused", f.lc.proxies[leader].refusedFetches())
	f.lc.heal()
	if err := f.lc.restart(leader); err != nil {
		return err
	}
	f.note("replication healed, node %d restarted", leader+1)
	_, _, err = f.await(30*time.Second, "ISR full again", f.fullISR)
	return err
}

func (f *faultRun) twoLost(leader int, followers []int) error {
	for _, i := range followers {
		f.lc.kill(i)
	}
	f.note("nodes %d and %d (followers) SIGKILLed", followers[0]+1, followers[1]+1)
	if err := sleepCtx(f.ctx, 3*time.Second); err != nil {
		return err
	}
	for _, i := range followers {
		if err := f.lc.restart(i); err != nil {
			return err
		}
	}
	f.note("nodes %d and %d restarted", followers[0]+1, followers[1]+1)
	_, _, err := f.await(30*time.Second, "ISR full again", f.fullISR)
	return err
}
