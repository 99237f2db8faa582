package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// runEOSWorker is the child role "eos-worker": a pkg/eos processor
// reading "in" and writing each value to "out", at most 20 inputs per
// transaction. It prints "txn N" after each committed transaction so the
// test knows when to kill it, and exits non-zero when fenced, as a real
// worker would (its supervisor restarts it).
func runEOSWorker() int {
	n := 0
	p, err := eos.New(eos.Config{
		Brokers:         []string{os.Getenv("WEIR_E2E_BROKERS")},
		TransactionalID: os.Getenv("WEIR_E2E_TXN_ID"),
		Group:           "eos",
		InputTopics:     []string{"in"},
		OutputTopic:     "out",
		MaxPerTxn:       20, // small transactions: many chances to die inside one
		TxnTimeout:      20 * time.Second,
		OnCommit: func(int) {
			n++
			fmt.Println("txn", n)
		},
		ClientOpts: []kgo.Opt{kgo.SessionTimeout(6 * time.Second)},
	}, func(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
		return []*kgo.Record{{Key: in.Key, Value: in.Value}}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer p.Close()
	if err := p.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// eosWorker is one worker process; it sends its index on commits for
// every transaction it reports committed, and on exits if it ends by
// itself.
type eosWorker struct {
	cmd    *exec.Cmd
	ended  chan struct{}
	killed atomic.Bool
}

func startEOSWorker(t *testing.T, brokers string, index int, commits, exits chan<- int) *eosWorker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childRoleEnv+"=eos-worker", "WEIR_E2E_BROKERS="+brokers, "WEIR_E2E_TXN_ID="+fmt.Sprintf("eos-%d", index))
	cmd.Stderr = &testWriter{t: t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &eosWorker{cmd: cmd, ended: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "txn %d", &n); err == nil {
				select {
				case commits <- index:
				default: // nobody is counting right now
				}
			}
		}
		cmd.Wait()
		close(w.ended)
		if !w.killed.Load() {
			exits <- index
		}
	}()
	t.Cleanup(w.kill)
	return w
}

func (w *eosWorker) kill() {
	w.killed.Store(true)
	w.cmd.Process.Kill()
	<-w.ended
}

// A consume-transform-produce pipeline of two workers whose processes are
// killed with SIGKILL mid-stream, and restarted with the same
// transactional ids, ends with the output, read committed, holding every
// input exactly once: the output records and the input offsets commit or
// abort together, and a restarted worker fences its zombie.
func TestConsumeTransformProduceSurvivesSIGKILLedWorkers(t *testing.T) {
	b, _ := startBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "in", 3, nil)
	createTopic(t, adm, "out", 3, nil)
	const n, kills = 4000, 4
	prod := newClient(t, b.Addr(), kgo.DefaultProduceTopic("in"))
	produced := 0
	produceChunk := func() {
		for range n / (kills + 1) {
			prod.Produce(testCtx(t), &kgo.Record{Key: []byte(strconv.Itoa(produced % 10)), Value: []byte(strconv.Itoa(produced))}, nil)
			produced++
		}
		if err := prod.Flush(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}

	commits, exits := make(chan int, 64), make(chan int, 64)
	workers := []*eosWorker{startEOSWorker(t, b.Addr(), 0, commits, exits), startEOSWorker(t, b.Addr(), 1, commits, exits)}
	restart := func(i int) { workers[i] = startEOSWorker(t, b.Addr(), i, commits, exits) }
	fencedExits := 0
	for range kills {
		produceChunk()
		// The first worker to commit twice more dies mid-stream: it is
		// working through input, so it dies inside a transaction or
		// between one's commit and the next.
		seen := map[int]int{}
		victim := -1
		for victim < 0 {
			select {
			case i := <-commits:
				if seen[i]++; seen[i] == 2 {
					victim = i
				}
			case i := <-exits:
				// Fenced by the coordinator (its transaction outlived its
				// timeout during a rebalance): restart it, as a supervisor
				// would.
				fencedExits++
				restart(i)
			case <-time.After(60 * time.Second):
				t.Fatal("no worker committed a transaction for 60s")
			}
		}
		workers[victim].kill()
		restart(victim)
	}
	produceChunk()

	// Wait until the output, read committed, holds every input; then
	// count every record in it.
	cons := newClient(t, b.Addr(), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	distinct := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for len(distinct) < produced {
		select {
		case i := <-exits:
			fencedExits++
			restart(i)
		default:
		}
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			logTxnState(t, b.Addr(), "out")
			t.Fatalf("output holds %d of %d inputs", len(distinct), produced)
		}
		fs.EachRecord(func(r *kgo.Record) { distinct[string(r.Value)] = true })
	}
	for _, w := range workers {
		w.kill()
	}
	counts := map[string]int{}
	for _, v := range readAll(t, b.Addr(), "out", true) {
		counts[v]++
	}
	for v, c := range counts {
		if c != 1 {
			t.Fatalf("input %s is in the output %d times", v, c)
		}
	}
	if len(counts) != produced {
		t.Fatalf("output holds %d distinct inputs, %d produced", len(counts), produced)
	}
	t.Logf("%d inputs, each once in the output, after %d SIGKILLs and %d fenced exits", produced, kills, fencedExits)
}

// logTxnState logs what holds a topic's last stable offset back.
func logTxnState(t *testing.T, addr, topic string) {
	adm := newAdmin(t, addr)
	ctx := testCtx(t)
	lso, _ := adm.ListCommittedOffsets(ctx, topic)
	hw, _ := adm.ListEndOffsets(ctx, topic)
	lso.Each(func(o kadm.ListedOffset) {
		h, _ := hw.Lookup(topic, o.Partition)
		t.Logf("%s-%d: last stable offset %d, high watermark %d", topic, o.Partition, o.Offset, h.Offset)
	})
	if listed, err := adm.ListTransactions(ctx, nil, nil); err == nil {
		for _, l := range listed.Sorted() {
			d, _ := adm.DescribeTransactions(ctx, l.TxnID)
			t.Logf("transaction %s: %+v", l.TxnID, d[l.TxnID])
		}
	}
	td, _ := adm.ListTopics(ctx, topic)
	set := kadm.TopicsSet{}
	set.Add(topic, td[topic].Partitions.Numbers()...)
	if described, err := adm.DescribeProducers(ctx, set); err == nil {
		described.EachProducer(func(p kadm.DescribedProducer) { t.Logf("producer %+v", p) })
	}
}
