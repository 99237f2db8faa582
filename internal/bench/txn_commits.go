package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// CommitsOptions describes a concurrent-commits workload: Producers
// transactional clients, each on a transactional id of its own, commit
// small transactions in a loop until Commits have been made between them.
// It measures how well a transaction coordinator overlaps the commits of
// unrelated transactional ids (their fsyncs and marker writes). The zero
// value of every field means its default.
type CommitsOptions struct {
	// Topic is created with Partitions partitions if it does not exist;
	// default DefaultTopic.
	Topic      string
	Partitions int32
	// Producers is the number of transactional producers; default 64.
	Producers int
	// Commits is how many transactions to commit in all; default 1000.
	Commits int
	// RecordsPerTxn is how many records each transaction holds, each to
	// the next partition in turn; default 1.
	RecordsPerTxn int
	// RecordSize is each record's value size; default DefaultRecordSize.
	RecordSize int
}

func (o *CommitsOptions) setDefaults() {
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	if o.Partitions == 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Producers == 0 {
		o.Producers = 64
	}
	if o.Commits == 0 {
		o.Commits = 1000
	}
	if o.RecordsPerTxn == 0 {
		o.RecordsPerTxn = 1
	}
	if o.RecordSize == 0 {
		o.RecordSize = DefaultRecordSize
	}
}

// CommitsResult holds the figures of a concurrent-commits run.
type CommitsResult struct {
	Commits int64         // transactions committed
	Elapsed time.Duration // from the first BeginTransaction to the last commit
	// CommitWait is the time spent in EndTransaction, summed over
	// every commit.
	CommitWait time.Duration
}

// CommitsPerSecond is the run's commit rate.
func (r CommitsResult) CommitsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Commits) / r.Elapsed.Seconds()
}

// ConcurrentCommits runs the workload opts describes. Every producer gets
// its producer id before the clock starts; each transaction produces its
// records synchronously, then commits. The run fails if any commit does.
func ConcurrentCommits(ctx context.Context, brokers []string, opts CommitsOptions) (CommitsResult, error) {
	opts.setDefaults()
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return CommitsResult{}, err
	}
	err = EnsureTopic(ctx, admin, opts.Topic, opts.Partitions, -1)
	admin.Close()
	if err != nil {
		return CommitsResult{}, err
	}
	clients := make([]*kgo.Client, opts.Producers)
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.Close()
			}
		}
	}()
	for i := range clients {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(benchTransactionalID()),
			kgo.DefaultProduceTopic(opts.Topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return CommitsResult{}, err
		}
		clients[i] = cl
		if _, _, err := cl.ProducerID(ctx); err != nil {
			return CommitsResult{}, fmt.Errorf("init producer id: %w", err)
		}
	}
	value := make([]byte, opts.RecordSize)
	var tickets, committed, commitWaitNs atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	start := time.Now()
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part := int32(i) % opts.Partitions
			for tickets.Add(1) <= int64(opts.Commits) {
				if err := cl.BeginTransaction(); err != nil {
					errs <- err
					return
				}
				recs := make([]*kgo.Record, opts.RecordsPerTxn)
				for j := range recs {
					recs[j] = &kgo.Record{Value: value, Partition: part}
					part = (part + 1) % opts.Partitions
				}
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					errs <- fmt.Errorf("produce: %w", err)
					return
				}
				t0 := time.Now()
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					errs <- fmt.Errorf("commit: %w", err)
					return
				}
				commitWaitNs.Add(int64(time.Since(t0)))
				committed.Add(1)
			}
		}()
	}
	wg.Wait()
	res := CommitsResult{Commits: committed.Load(), Elapsed: time.Since(start), CommitWait: time.Duration(commitWaitNs.Load())}
	close(errs)
	return res, <-errs
}
