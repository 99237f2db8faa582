package saga

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// Services names the three services a worker can run.
var Services = []string{"order", "inventory", "payment"}

// ServiceConfig is what a worker needs to run one service: the
// application (consumer group and changelog prefix), its input and
// default output topics, its store and its Process function.
type ServiceConfig struct {
	Group   string
	Input   string
	Output  string
	Store   string
	Process eos.Process
	// ClientOpts must be passed to the service's processor
	// (eos.Config.ClientOpts): its partitioner routes replies.
	ClientOpts []kgo.Opt
}

// Service returns the configuration of the service named name;
// orderTimeout is the order service's deadline for an order to become
// terminal, in event time from its placement.
func Service(name string, orderTimeout time.Duration) (ServiceConfig, error) {
	var sc ServiceConfig
	switch name {
	case "order":
		sc = ServiceConfig{Group: "saga-order", Input: OrdersTopic, Output: StatesTopic, Store: "orders", Process: OrderService(orderTimeout)}
	case "inventory":
		sc = ServiceConfig{Group: "saga-inventory", Input: InventoryTopic, Output: StockTopic, Store: "stock", Process: Inventory()}
	case "payment":
		sc = ServiceConfig{Group: "saga-payment", Input: PaymentsTopic, Output: BalancesTopic, Store: "balances", Process: Payment()}
	default:
		return ServiceConfig{}, fmt.Errorf("saga: unknown service %q (want order, inventory or payment)", name)
	}
	sc.ClientOpts = []kgo.Opt{kgo.RecordPartitioner(ReplyPartitioner(eos.ChangelogTopic(sc.Group, sc.Store)))}
	return sc, nil
}

// ReplyPartitioner is the partitioner of a service's processor: a reply
// to the order service (a record to OrdersTopic) goes to the partition
// the record names, the one its command came from (Message.ReplyPartition),
// so that it reaches the store holding the order whatever partitioner
// placed the order; a record of the store's changelog goes to the
// partition it names, as pkg/eos requires; anything else, and a reply
// naming no partition (-1), by the murmur2 hash of its key.
func ReplyPartitioner(changelog string) kgo.Partitioner {
	return replyPartitioner{changelog, kgo.UniformBytesPartitioner(64<<10, true, true, nil)}
}

type replyPartitioner struct {
	changelog string
	dflt      kgo.Partitioner
}

func (p replyPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == OrdersTopic || topic == p.changelog {
		return namedPartition{p.dflt.ForTopic(topic)}
	}
	return p.dflt.ForTopic(topic)
}

// namedPartition is the partition a record names, if it names one that
// exists, and otherwise that of its fallback.
type namedPartition struct{ fallback kgo.TopicPartitioner }

func (namedPartition) RequiresConsistency(*kgo.Record) bool { return true }

func (p namedPartition) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 && int(r.Partition) < n {
		return int(r.Partition)
	}
	return p.fallback.Partition(r, n)
}

// RunTicker writes a Tick to every partition of OrdersTopic every
// interval until ctx ends, so that event time advances on a partition
// that receives nothing else and its orders' deadlines pass. Ticks are
// plain idempotent writes: a tick lost or written twice changes nothing,
// since an order's timeout depends only on the largest timestamp read.
func RunTicker(ctx context.Context, cl *kgo.Client, interval time.Duration) {
	adm := kadm.NewClient(cl)
	var parts int
	for parts == 0 {
		if td, err := adm.ListTopics(ctx, OrdersTopic); err == nil {
			if t, ok := td[OrdersTopic]; ok && t.Err == nil {
				parts = len(t.Partitions)
			}
		}
		if parts == 0 && !sleep(ctx, interval) {
			return
		}
	}
	tick := Message{Type: Tick}.Encode()
	for sleep(ctx, interval) {
		for p := range parts {
			// TryProduce: while the broker is down, ticks beyond the
			// buffer are dropped rather than block the loop.
			cl.TryProduce(ctx, &kgo.Record{Topic: OrdersTopic, Partition: int32(p), Value: tick}, func(*kgo.Record, error) {})
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
