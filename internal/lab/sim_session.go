package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The delivery simulator runs one session at a time: its own `weir serve`
// child (with --unsafe-faults none, on a fresh data directory, as the lab
// runs one per scenario) or, with SimSettings.Cluster, its own cluster of
// them (sim_cluster.go), a producer in this process sending numbered
// records at a steady seeded pace, and a `weir lab worker` child that
// consumes them with the chosen commit strategy. A person injects faults
// while records flow; every record's fate is followed live, and when the
// session stops the lab's checker judges the logs the producer and the
// worker wrote.

// SimRecords is how many records a session sends at most.
const SimRecords = 1500

// simTxnRecords is how many records one simulator transaction carries.
const simTxnRecords = 10

// simBurstMin is the smallest burst a broker kill sends through; the
// largest is twice that.
const simBurstMin = 100

// simPartitions is the partition count of a one-broker session's topic;
// a cluster session's topic has one partition, so that "the leader" is
// one node.
const simPartitions = 3

// Fault kinds a person can inject.
const (
	SimDropAck      = "drop-ack"
	SimCutConn      = "cut-connection"
	SimKillBroker   = "kill-broker"
	SimKillConsumer = "kill-consumer"
	// SimKillLeader and SimKillTwo act on a cluster session's nodes.
	SimKillLeader = "kill-leader"
	SimKillTwo    = "kill-two-nodes"
)

// SimFaults lists a one-broker session's fault kinds, in the order the
// page shows them.
var SimFaults = []string{SimDropAck, SimCutConn, SimKillBroker, SimKillConsumer}

// simClusterFaults lists a cluster session's: the acknowledgement and
// connection faults act on the partition's leader.
var simClusterFaults = []string{SimDropAck, SimCutConn, SimKillLeader, SimKillTwo, SimKillConsumer}

// SimFaultsFor lists the fault kinds of a session of cluster nodes (0:
// one broker), in the order the page shows them.
func SimFaultsFor(cluster int) []string {
	if cluster > 0 {
		return simClusterFaults
	}
	return SimFaults
}

// Session states.
const (
	SimRunning  = "running"
	SimStopping = "stopping"
	SimDone     = "done"
	SimFailed   = "failed"
)

// Session is one simulator run.
type Session struct {
	settings SimSettings
	exe, dir string
	topic    string
	sched    simSchedule
	started  time.Time
	ctx      context.Context
	cancel   context.CancelFunc

	broker    *brokerProc // one broker; nil in a cluster session
	adminAddr string      // its admin listener
	cluster   *labCluster // a cluster session's nodes; nil with one broker
	// tally counts the error codes the cluster's nodes answered the
	// producer with, as the lab's proxies count them.
	tally      *errorTally
	bk         brokers
	partitions int32
	watchDone  chan struct{} // closed when the partition watch ends
	ackedLog   *os.File
	effects    string
	stopSend   chan struct{}
	sendDone   chan struct{}
	consDone   chan struct{}

	mu        sync.Mutex
	faultRNG  *rand.Rand // draws of the faults clicked, in click order
	burst     int        // records still to send without a gap
	ackedN    int
	state     string
	err       string
	sent      int
	acked     []bool
	failed    []bool
	stored    []int
	delivered []Delivery
	events    []string
	// brokerUp is false while a broker or node fault is under way (a
	// node down or being restarted); one such fault at a time.
	brokerUp bool
	nodeUp   []bool    // a cluster session's nodes
	part     partState // its partition, as last polled
	partSeen bool
	bg       sync.WaitGroup // broker and node faults under way
	worker   *worker
	// workerReady is set once the worker handles SIGUSR1.
	workerReady bool
	workerGen   int
	stopping    bool
	final       *SimFinal
}

// SimFinal is what a session measured once stopped.
type SimFinal struct {
	// Tally is the checker run over what the session followed live: the
	// producer's promises and the worker's effects as it reported them.
	Tally Result `json:"tally"`
	// Checker is the lab's checker run over the logs on disk: the
	// acknowledged ids the producer wrote and the effects file (or dedup
	// store) the worker wrote, read back as a lab scenario reads them.
	Checker    Result   `json:"checker"`
	Violations []string `json:"violations"`
	// ResponsesHit is how many produce responses the broker dropped or
	// cut after its last start: proof that a clicked fault acted.
	ResponsesHit int `json:"produceResponsesHit"`
}

// StartSession starts a session: its broker, topic, producer and
// consumer. exe is the weir binary.
func StartSession(ctx context.Context, exe string, s SimSettings) (*Session, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "weir-sim-")
	if err != nil {
		return nil, err
	}
	ss := &Session{settings: s, exe: exe, dir: dir, topic: fmt.Sprintf("weir-sim-%d", s.Seed), partitions: simPartitions,
		sched: newSimSchedule(s.Seed, SimRecords), started: time.Now(), state: SimRunning,
		acked: make([]bool, SimRecords), failed: make([]bool, SimRecords), stored: make([]int, SimRecords),
		stopSend: make(chan struct{}), sendDone: make(chan struct{}), consDone: make(chan struct{}),
		effects: filepath.Join(dir, "effects")}
	ss.faultRNG = rand.New(rand.NewSource(ss.sched.faultSeed))
	ss.ctx, ss.cancel = context.WithCancel(context.Background())
	if err := ss.start(ctx); err != nil {
		ss.cancel()
		ss.stopProcs()
		os.RemoveAll(dir)
		return nil, err
	}
	return ss, nil
}

func (ss *Session) start(ctx context.Context) error {
	if ss.settings.Cluster > 0 {
		if err := ss.startNodes(ctx); err != nil {
			return err
		}
	} else if err := ss.startOneBroker(ctx); err != nil {
		return err
	}
	var err error
	if ss.ackedLog, err = os.Create(filepath.Join(ss.dir, "acked")); err != nil {
		return err
	}
	go ss.tailLog()
	go ss.consume()
	go ss.produce()
	return nil
}

// startOneBroker starts a one-broker session's broker and topic.
func (ss *Session) startOneBroker(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	ss.adminAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ss.broker, err = startBroker(ctx, ss.exe, filepath.Join(ss.dir, "broker"), "none", ss.sched.faultSeed, "--admin-listen", ss.adminAddr)
	if err != nil {
		return err
	}
	ss.brokerUp = true
	ss.bk = brokers{addrs: []string{ss.broker.addr}}
	if err := createTopic(ctx, ss.bk, ss.topic, ss.partitions); err != nil {
		return err
	}
	ss.event("broker %s started with --unsafe-faults none --unsafe-faults-seed %d; topic %s, %d partitions", ss.broker.addr, ss.sched.faultSeed, ss.topic, ss.partitions)
	return nil
}

// stopProcs ends the session's broker or cluster; the session's context
// is cancelled.
func (ss *Session) stopProcs() {
	if ss.broker != nil {
		ss.broker.stop()
	}
	if ss.watchDone != nil {
		<-ss.watchDone
	}
	if ss.cluster != nil {
		ss.cluster.stop()
	}
}

// event records what happened, with the time since the start.
func (ss *Session) event(format string, args ...any) {
	line := fmt.Sprintf("%5.1fs  ", time.Since(ss.started).Seconds()) + fmt.Sprintf(format, args...)
	ss.mu.Lock()
	ss.events = append(ss.events, line)
	ss.mu.Unlock()
}

func (ss *Session) fail(err error) {
	ss.mu.Lock()
	if ss.err == "" {
		ss.err = err.Error()
	}
	ss.mu.Unlock()
}

// produce sends the records at the seeded pace until stopped.
func (ss *Session) produce() {
	defer close(ss.sendDone)
	// In a cluster a record the partition cannot take within the lab's
	// cluster delivery timeout is given up (as in the lab's cluster
	// rows): an outage longer than that shows as records not
	// acknowledged.
	delivery := 40 * time.Second
	if ss.cluster != nil {
		delivery = clusterDeliveryTimeout
	}
	opts := ss.bk.opts(append(append([]kgo.Opt{
		kgo.ClientID(simProducerID),
		kgo.DefaultProduceTopic(ss.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(delivery),
	}, clientTimeouts()...), ss.settings.producerOpts()...)...)
	if ss.settings.Transactions {
		opts = append(opts, kgo.TransactionalID("weir-sim-"+ss.topic), kgo.TransactionTimeout(10*time.Second))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		ss.fail(err)
		return
	}
	defer func() { cl.Close() }()
	if ss.settings.Transactions {
		ss.produceTransactions(cl, opts)
		return
	}
	for id := 0; id < SimRecords && ss.pace(id); id++ {
		ss.mu.Lock()
		ss.sent = id + 1
		ss.mu.Unlock()
		cl.Produce(ss.ctx, ss.record(id), func(_ *kgo.Record, err error) { ss.settle(id, err) })
	}
	fctx, cancel := context.WithTimeout(ss.ctx, 45*time.Second)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		ss.fail(fmt.Errorf("flush: %w", err))
	}
}

// pace waits the gap before record id; false once the session stops.
// During a burst there is no gap.
func (ss *Session) pace(id int) bool {
	gap := ss.sched.gaps[id]
	ss.mu.Lock()
	if ss.burst > 0 {
		ss.burst--
		gap = 0
	}
	ss.mu.Unlock()
	select {
	case <-ss.stopSend:
		return false
	case <-time.After(gap):
		return true
	}
}

func (ss *Session) record(id int) *kgo.Record {
	return &kgo.Record{Value: recordValue(int64(id)), Partition: int32(id) % ss.partitions}
}

// settle records a promise's outcome; acknowledged ids go to the acked
// log as they are acknowledged.
func (ss *Session) settle(id int, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err != nil {
		ss.failed[id] = true
		return
	}
	ss.acked[id] = true
	ss.ackedN++
	fmt.Fprintf(ss.ackedLog, "%d\n", id)
}

// produceTransactions sends transactions of simTxnRecords paced records;
// an aborted one is sent again in a new transaction, one whose commit
// outcome is unknown is not (its records stay unacknowledged), as the
// lab's transactional producer does.
func (ss *Session) produceTransactions(cl *kgo.Client, opts []kgo.Opt) {
	for first := 0; first < SimRecords; first += simTxnRecords {
		last := min(first+simTxnRecords, SimRecords)
		for attempt := 0; ; attempt++ {
			if attempt == 5 || ss.ctx.Err() != nil {
				return
			}
			if err := cl.BeginTransaction(); err != nil {
				ss.fail(err)
				return
			}
			var failed sync.Once
			ok := true
			for id := first; id < last; id++ {
				if !ss.pace(id) {
					last = id
					break
				}
				ss.mu.Lock()
				ss.sent = max(ss.sent, id+1)
				ss.mu.Unlock()
				cl.Produce(ss.ctx, ss.record(id), func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Do(func() { ok = false })
					}
				})
			}
			fctx, cancel := context.WithTimeout(ss.ctx, 30*time.Second)
			if err := cl.Flush(fctx); err != nil {
				ok = false
			}
			cancel()
			err := cl.EndTransaction(ss.ctx, kgo.TransactionEndTry(ok))
			if err == nil && ok {
				for id := first; id < last; id++ {
					ss.settle(id, nil)
				}
				break
			}
			if err != nil {
				ss.event("transaction of records %d-%d: %v", first, last-1, err)
				cl.Close()
				if cl, err = kgo.NewClient(opts...); err != nil {
					ss.fail(err)
					return
				}
				if ok {
					break // commit outcome unknown: not sent again
				}
			} else {
				ss.event("transaction of records %d-%d aborted; sent again", first, last-1)
			}
			if last == first || ss.stopped() {
				return
			}
		}
		if ss.stopped() {
			return
		}
	}
}

func (ss *Session) stopped() bool {
	select {
	case <-ss.stopSend:
		return true
	default:
		return false
	}
}

// tailLog reads the topic as it grows, read_uncommitted, to mark the
// records stored in the log.
func (ss *Session) tailLog() {
	cl, err := ss.bk.client(append([]kgo.Opt{
		kgo.ConsumeTopics(ss.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, clientTimeouts()...)...)
	if err != nil {
		ss.fail(err)
		return
	}
	defer cl.Close()
	for ss.ctx.Err() == nil {
		fs := cl.PollFetches(ss.ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if id := parseID(r.Value); id >= 0 && id < SimRecords {
				ss.mu.Lock()
				ss.stored[id]++
				ss.mu.Unlock()
			}
		})
	}
}

// simWorkerPause is how long the session waits before starting a new
// consumer worker after one failed (its group coordinator down, say).
const simWorkerPause = 500 * time.Millisecond

// simWorkerFailures is how many failed workers in a row end the session
// (a minute of them), and simLastWorkerFailures how many of the last
// generation's.
const (
	simWorkerFailures     = 120
	simLastWorkerFailures = 3
)

// consume runs worker generations: each follows the topic until it is
// killed, then the next takes its place; once the session stops, a last
// one reads up to the end of the log and commits, as the lab's last
// generation does. A worker that fails (its client cannot reach the
// group's coordinator while nodes are down, say) is replaced after a
// pause, as a supervisor would restart it.
func (ss *Session) consume() {
	defer close(ss.consDone)
	e := &env{cfg: &Config{Exe: ss.exe}}
	w := WorkerConfig{Brokers: ss.bk.addrs, Role: ss.settings.workerRole(), Topic: ss.topic, Group: ss.topic + "-group",
		Instance: "sim-worker", Effects: ss.effects, ReadCommitted: ss.settings.ReadCommitted, EffectLines: true}
	failures := 0 // failed workers in a row
	wasLast := false
	for gen := 0; ; gen++ {
		ss.mu.Lock()
		last := ss.stopping
		ss.workerGen = gen + 1
		ss.mu.Unlock()
		if last && !wasLast {
			failures = 0 // the last generation counts its own
		}
		wasLast = last
		w.Follow = !last
		started := time.Now()
		wk, err := startWorker(e, w)
		if err != nil {
			ss.fail(err)
			return
		}
		ss.mu.Lock()
		ss.worker = wk
		ss.mu.Unlock()
		for line := range wk.lines {
			if line == "ready" {
				ss.mu.Lock()
				ss.workerReady = true
				ss.mu.Unlock()
				continue
			}
			if d, ok := strings.CutPrefix(line, "effect "); ok {
				if dl, err := parseEffect(d); err == nil {
					ss.mu.Lock()
					ss.delivered = append(ss.delivered, dl)
					ss.mu.Unlock()
				}
			}
		}
		<-wk.exited
		ss.mu.Lock()
		ss.worker, ss.workerReady = nil, false
		ss.mu.Unlock()
		killed := false
		var ee *exec.ExitError
		if errors.As(wk.err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				killed = true
			}
		}
		switch {
		case ss.ctx.Err() != nil:
			return
		case last && wk.err == nil:
			return
		case killed:
			failures = 0
			ss.event("consumer worker %d died mid-batch (SIGKILL); worker %d takes over", gen+1, gen+2)
		case wk.err != nil:
			if time.Since(started) > 5*simWorkerPause {
				failures = 0 // it ran: a new streak
			}
			failures++
			if failures == 1 || failures%10 == 0 {
				ss.event("consumer worker %d exited: %v: %s; a new one starts every %v until one runs (%d failed in a row)",
					gen+1, wk.err, strings.TrimSpace(wk.stderr.String()), simWorkerPause, failures)
			}
			if failures >= simWorkerFailures || (last && failures >= simLastWorkerFailures) {
				ss.fail(fmt.Errorf("consumer worker failed: %v", wk.err))
				return
			}
			if sleepCtx(ss.ctx, simWorkerPause) != nil {
				return
			}
		}
	}
}

// Inject injects a fault of kind now.
func (ss *Session) Inject(ctx context.Context, kind string) error {
	ss.mu.Lock()
	if ss.state != SimRunning {
		ss.mu.Unlock()
		return errors.New("the session is not running")
	}
	sent := ss.sent
	ss.mu.Unlock()
	switch kind {
	case SimDropAck:
		if err := ss.addBrokerFault(ctx, "produce.response=drop#1"); err != nil {
			return err
		}
		ss.event("drop the next acknowledgement (at record %d): produce.response=drop#1", sent)
	case SimCutConn:
		if err := ss.addBrokerFault(ctx, "produce.response=close#1"); err != nil {
			return err
		}
		ss.event("cut the connection after the next produce response (at record %d): produce.response=close#1", sent)
	case SimKillBroker:
		if ss.cluster != nil {
			return errors.New("this session runs a cluster: kill the leader or two nodes")
		}
		ss.mu.Lock()
		if !ss.brokerUp {
			ss.mu.Unlock()
			return errors.New("the broker is already down")
		}
		ss.brokerUp = false
		// Records must be in flight when the broker dies, as they are
		// when the lab kills its broker while the producer writes flat
		// out: the broker is frozen (SIGSTOP), the producer sends a burst
		// (its size drawn from the seed) that stays unread in the
		// broker's socket, and then the broker is SIGKILLed. Whatever the
		// producer counted as done without the broker's word is lost.
		burst := simBurstMin + ss.faultRNG.Intn(simBurstMin)
		ss.burst = burst
		ackedBefore, cmd := ss.ackedN, ss.broker.process()
		ss.mu.Unlock()
		if err := cmd.Signal(syscall.SIGSTOP); err != nil {
			return fmt.Errorf("freeze the broker: %w", err)
		}
		ss.event("kill the broker (at record %d): frozen while a burst of %d records is sent", sent, burst)
		ss.bg.Add(1)
		go func() {
			defer ss.bg.Done()
			// Until the burst is sent and settled, or a second has passed.
			for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && ss.ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
				ss.mu.Lock()
				left := ss.burst
				ss.mu.Unlock()
				if left == 0 && ss.quiet() {
					break
				}
			}
			ss.broker.kill()
			ss.mu.Lock()
			n := ss.ackedN - ackedBefore
			ss.mu.Unlock()
			ss.event("broker SIGKILLed; %d records acknowledged since the freeze", n)
			if err := ss.broker.restart(ss.ctx); err != nil {
				ss.fail(fmt.Errorf("restart broker: %w", err))
				return
			}
			ss.mu.Lock()
			ss.brokerUp = true
			ss.mu.Unlock()
			ss.event("broker restarted on the same data directory and port")
		}()
	case SimKillConsumer:
		ss.mu.Lock()
		wk, ready := ss.worker, ss.workerReady
		ss.mu.Unlock()
		if wk == nil || !ready {
			return errors.New("the consumer worker is starting; try again in a moment")
		}
		if err := wk.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return err
		}
		ss.event("consumer worker told to die halfway through its next batch (at record %d)", sent)
	case SimKillLeader, SimKillTwo:
		return ss.injectNodeFault(ctx, kind, sent)
	default:
		return fmt.Errorf("unknown fault %q", kind)
	}
	return nil
}

// addBrokerFault adds rules to the broker's injector through its admin
// listener; in a cluster, to the injector of the partition's leader,
// which answers the producer.
func (ss *Session) addBrokerFault(ctx context.Context, spec string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	admin := ss.adminAddr
	if ss.cluster != nil {
		i, err := ss.leaderNow(ctx)
		if err != nil {
			return err
		}
		admin = ss.cluster.c.Nodes[i].AdminAddr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+admin+"/unsafe/faults", strings.NewReader(spec))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("broker's admin listener: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := bufio.NewReader(resp.Body).ReadString('\n')
		return fmt.Errorf("broker refused the fault: %s", strings.TrimSpace(msg))
	}
	return nil
}

// quiet reports whether every record sent has settled (acknowledged or
// failed).
func (ss *Session) quiet() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id := 0; id < ss.sent; id++ {
		if !ss.acked[id] && !ss.failed[id] {
			return false
		}
	}
	return true
}

// responsesHit asks the broker (every node of a cluster) how often its
// produce.response rules fired.
func (ss *Session) responsesHit(ctx context.Context) (int, error) {
	if ss.cluster == nil {
		return responsesHitAt(ctx, ss.adminAddr)
	}
	total := 0
	for _, nd := range ss.cluster.c.Nodes {
		n, err := responsesHitAt(ctx, nd.AdminAddr)
		if err != nil {
			return 0, fmt.Errorf("node %d: %w", nd.ID, err)
		}
		total += n
	}
	return total, nil
}

// responsesHitAt asks the node with admin listener admin.
func responsesHitAt(ctx context.Context, admin string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/unsafe/faults?point=produce.response", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	return strconv.Atoi(strings.TrimSpace(line))
}

// Stop stops sending, lets the consumer read to the end of the log, and
// judges the session. It returns once the session is done.
func (ss *Session) Stop(ctx context.Context) {
	ss.mu.Lock()
	if ss.state != SimRunning {
		ss.mu.Unlock()
		return
	}
	ss.state = SimStopping
	ss.mu.Unlock()
	ss.event("stop: no more records sent; waiting for the outstanding acknowledgements")
	close(ss.stopSend)
	<-ss.sendDone
	ss.bg.Wait()
	// The last generation must find the broker up.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ss.mu.Lock()
		up := ss.brokerUp
		ss.mu.Unlock()
		if up {
			break
		}
	}
	ss.mu.Lock()
	ss.stopping = true
	wk := ss.worker
	ss.mu.Unlock()
	if wk != nil {
		wk.cmd.Process.Signal(syscall.SIGTERM)
	}
	ss.event("consumer reading to the end of the log")
	select {
	case <-ss.consDone:
	case <-time.After(60 * time.Second):
		ss.fail(errors.New("consumer did not reach the end of the log within 60s"))
	}
	ss.judge(ctx)
	ss.cancel()
	ss.stopProcs()
	ss.ackedLog.Close()
	os.RemoveAll(ss.dir)
	// Done only now: its processes are gone, a new session may start.
	ss.mu.Lock()
	ss.state = SimDone
	if ss.err != "" {
		ss.state = SimFailed
	}
	ss.mu.Unlock()
	ss.event("done")
}

// judge runs the checker twice: over the live tally and over the logs.
func (ss *Session) judge(ctx context.Context) {
	var fates map[PartOffset]Fate
	if ss.settings.Transactions {
		// Which records belong to aborted or open transactions, for the
		// read_committed judgement, as the lab learns it.
		if v, err := readBack(ctx, ss.bk, ss.topic, ss.partitions); err == nil {
			fates = v.fates
		} else {
			ss.fail(fmt.Errorf("read back: %w", err))
		}
	}
	ss.mu.Lock()
	live := History{Sent: ss.sent, Acked: append([]bool(nil), ss.acked[:ss.sent]...), Delivered: append([]Delivery(nil), ss.delivered...), Fates: fates}
	ss.ackedLog.Sync()
	sent := ss.sent
	ss.mu.Unlock()
	fromLogs, err := ss.historyFromLogs(sent)
	f := &SimFinal{Tally: Check(live)}
	if err != nil {
		ss.fail(err)
	} else {
		fromLogs.Fates = fates
		f.Checker = Check(fromLogs)
	}
	f.Violations = f.Tally.Violations(ss.settings.Claim())
	if n, err := ss.responsesHit(ctx); err == nil {
		f.ResponsesHit = n
		if ss.cluster != nil {
			ss.event("the nodes dropped or cut %d produce responses since their last start", n)
		} else {
			ss.event("the broker dropped or cut %d produce responses since its last start", n)
		}
	}
	ss.mu.Lock()
	ss.final = f
	ss.mu.Unlock()
	ss.event("the lab checker over the logs: %s", resultText(f.Checker))
}

// historyFromLogs reads the acknowledged ids and the worker's effects back
// from disk.
func (ss *Session) historyFromLogs(sent int) (History, error) {
	h := History{Sent: sent, Acked: make([]bool, sent)}
	data, err := os.ReadFile(filepath.Join(ss.dir, "acked"))
	if err != nil {
		return h, err
	}
	for _, line := range strings.Fields(string(data)) {
		id, err := strconv.Atoi(line)
		if err != nil || id < 0 || id >= sent {
			return h, fmt.Errorf("acked log: bad line %q", line)
		}
		h.Acked[id] = true
	}
	if ss.settings.Dedup {
		h.Delivered, err = readBoltEffects(ss.effects)
	} else {
		h.Delivered, err = readFileEffects(ss.effects)
	}
	return h, err
}

func resultText(r Result) string {
	return fmt.Sprintf("sent %d, acknowledged %d, delivered %d, lost %d, duplicated %d", r.Sent, r.Acked, r.Delivered, r.Lost, r.Duplicated)
}

// Close ends a session that was not stopped, without judging it.
func (ss *Session) Close() {
	ss.mu.Lock()
	running := ss.state == SimRunning
	ss.state = SimDone
	wk := ss.worker
	ss.mu.Unlock()
	if !running {
		return
	}
	close(ss.stopSend)
	ss.cancel()
	if wk != nil {
		wk.cmd.Process.Kill()
	}
	<-ss.sendDone
	<-ss.consDone
	ss.bg.Wait()
	ss.stopProcs()
	ss.ackedLog.Close()
	os.RemoveAll(ss.dir)
}
