package lab

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/saga"
	"github.com/weir-broker/weir/pkg/eos"
)

// The saga row's worker roles: one per service of examples/saga. The
// lab runs the example's own services (saga.Service), with the settings
// of its worker command, inside `weir lab worker` so that the lab can
// kill them as it kills its other workers.
const (
	workerSagaOrder     = "saga-order"
	workerSagaInventory = "saga-inventory"
	workerSagaPayment   = "saga-payment"
)

var sagaRoles = []string{workerSagaOrder, workerSagaInventory, workerSagaPayment}

// Event-time settings of the saga row's order service: an order not
// terminal 3 s after its placement is cancelled, and ticks keep event
// time moving on idle partitions (as in the example's kill test).
const (
	sagaOrderTimeout = 3 * time.Second
	sagaTick         = 300 * time.Millisecond
)

func isSagaRole(role string) bool {
	for _, r := range sagaRoles {
		if r == role {
			return true
		}
	}
	return false
}

// sagaService is the example's configuration of a saga worker role.
func sagaService(role string) (saga.ServiceConfig, error) {
	return saga.Service(strings.TrimPrefix(role, "saga-"), sagaOrderTimeout)
}

// runSagaWorker runs one service of the order saga until ctx ends. Its
// input, group and topics are the example's own; w.Effects is its state
// directory. It reports "batch" per produce batch and "commit" per
// committed transaction, and SIGKILLs itself after w.KillAfter batches:
// with a transaction open.
func runSagaWorker(ctx context.Context, w WorkerConfig) error {
	sc, err := sagaService(w.Role)
	if err != nil {
		return err
	}
	if w.Topic != sc.Input || w.Group != sc.Group {
		return fmt.Errorf("worker role %s reads %s in group %s, not %s in %s", w.Role, sc.Input, sc.Group, w.Topic, w.Group)
	}
	status, hook := statusAndKill(w)
	p, err := eos.NewStateful(eos.Config{
		Brokers:         w.Brokers,
		TransactionalID: w.Instance,
		Group:           sc.Group,
		InputTopics:     []string{sc.Input},
		OutputTopic:     sc.Output,
		MaxPerTxn:       100,
		TxnTimeout:      10 * time.Second,
		Store:           sc.Store,
		StateDir:        w.Effects,
		OnCommit:        func(int) { status("commit") },
		// Static membership (KIP-345): a restarted worker takes its
		// partitions back without a rebalance.
		ClientOpts: append([]kgo.Opt{
			kgo.InstanceID(w.Instance),
			kgo.SessionTimeout(6 * time.Second),
			kgo.FetchMaxWait(200 * time.Millisecond),
			kgo.WithHooks(hook),
		}, append(append(clientTimeouts(), sc.ClientOpts...), w.ClientOpts...)...),
	}, sc.Process)
	if err != nil {
		return err
	}
	defer p.Close()
	if w.Role == workerSagaOrder {
		cl, err := w.brokers().client(append(clientTimeouts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		go saga.RunTicker(tctx, cl, sagaTick)
	}
	return p.Run(ctx)
}
