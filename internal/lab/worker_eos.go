package lab

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// runEOSWorker runs a consume-transform-produce processor that copies
// each input record to the output topic, reports "batch" and "commit"
// status lines, and stops once the group's offsets cover the input.
func runEOSWorker(ctx context.Context, w WorkerConfig, ends map[int32]int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	status, hook := statusAndKill(w)
	cfg := eos.Config{
		Brokers:         w.Brokers,
		TransactionalID: "weir-lab-" + w.Group,
		Group:           w.Group,
		InputTopics:     []string{w.Topic},
		OutputTopic:     w.Output,
		MaxPerTxn:       50,
		TxnTimeout:      10 * time.Second,
		OnCommit:        func(int) { status("commit") },
		ClientOpts: append([]kgo.Opt{
			kgo.InstanceID(w.Instance),
			kgo.SessionTimeout(6 * time.Second),
			// Outputs name their partition; so do changelog records.
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerBatchMaxBytes(batchMaxBytes),
			kgo.FetchMaxWait(200 * time.Millisecond),
			kgo.WithHooks(hook),
		}, append(clientTimeouts(), w.ClientOpts...)...),
	}
	var (
		p   *eos.Processor
		err error
	)
	if w.Role == workerStateful {
		cfg.Store, cfg.StateDir = statefulStore, w.Effects
		p, err = eos.NewStateful(cfg, countByKey)
	} else {
		p, err = eos.New(cfg, func(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
			// The output keeps the id and the partition, so the checker
			// can match it to the input and see ordering.
			return []*kgo.Record{{Value: in.Value, Partition: in.Partition}}, nil
		})
	}
	if err != nil {
		return err
	}
	defer p.Close()
	go stopWhenCommitted(ctx, cancel, w, ends)
	return p.Run(ctx)
}

// stopWhenCommitted cancels the worker once the group's committed
// offsets cover the input.
func stopWhenCommitted(ctx context.Context, cancel context.CancelFunc, w WorkerConfig, ends map[int32]int64) {
	cl, err := w.brokers().client(clientTimeouts()...)
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if done, err := allCommitted(ctx, adm, w.Group, w.Topic, ends); err == nil && done {
			cancel()
			return
		}
	}
}

// batchWrittenHook calls fn after each produce batch the broker accepted.
// statusAndKill gives a consume-transform-produce worker its status line
// writer (safe for concurrent use) and the client hook that reports each
// produced batch and SIGKILLs the worker at its w.KillAfter-th.
func statusAndKill(w WorkerConfig) (status func(string), hook batchWrittenHook) {
	var (
		mu      sync.Mutex
		batches int
	)
	status = func(s string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w.Status, s)
	}
	hook = func() {
		mu.Lock()
		batches++
		n := batches
		mu.Unlock()
		status("batch")
		if n == w.KillAfter {
			killSelf()
		}
	}
	return status, hook
}

type batchWrittenHook func()

func (h batchWrittenHook) OnProduceBatchWritten(kgo.BrokerMetadata, string, int32, kgo.ProduceBatchMetrics) {
	h()
}
