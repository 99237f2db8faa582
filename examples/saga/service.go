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
}

// Service returns the configuration of the service named name;
// orderTimeout is the order service's deadline for an order to become
// terminal, in event time from its placement.
func Service(name string, orderTimeout time.Duration) (ServiceConfig, error) {
	switch name {
	case "order":
		return ServiceConfig{"saga-order", OrdersTopic, StatesTopic, "orders", OrderService(orderTimeout)}, nil
	case "inventory":
		return ServiceConfig{"saga-inventory", InventoryTopic, StockTopic, "stock", Inventory()}, nil
	case "payment":
		return ServiceConfig{"saga-payment", PaymentsTopic, BalancesTopic, "balances", Payment()}, nil
	}
	return ServiceConfig{}, fmt.Errorf("saga: unknown service %q (want order, inventory or payment)", name)
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
