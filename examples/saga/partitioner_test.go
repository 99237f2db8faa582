package saga_test

import (
	"context"
	"hash/crc32"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/internal/exampletest"
	"github.com/weir-broker/weir/examples/saga"
)

// TestAnOrderPlacedByAClientWithAnotherPartitionerSettles places an
// order keyed by its id, as the orders topic asks, from a client whose
// partitioner is librdkafka's default (consistent_random: CRC32 of the
// key), the default of the C, Python, Go-confluent and .NET clients,
// rather than the murmur2 of the Java client and of the services' own
// replies. The order must reach a terminal state, settle, and leave the
// stock as it found it unless it completed. The order service keeps the
// order in the store of the partition the placement arrived on, while
// the replies, keyed by order, go to the murmur2 partition, where the
// order is unknown and they are skipped: the order is cancelled by
// timeout and waits for ever for a reply, and the stock it reserved is
// never released.
func TestAnOrderPlacedByAClientWithAnotherPartitionerSettles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	const parts = 3
	r := startRig(t, ctx, parts, 3*time.Second, saga.Services...)
	murmur := kgo.StickyKeyPartitioner(nil).ForTopic(saga.OrdersTopic)
	var m saga.Message
	var crc int32
	for i := 0; ; i++ {
		m = saga.Message{Type: saga.OrderPlaced, Order: "o" + strconv.Itoa(i), Customer: "ada", Item: "apple", Quantity: 2, Amount: 10}
		key := []byte(m.Order)
		if crc = int32(crc32.ChecksumIEEE(key) % parts); int(crc) != murmur.Partition(&kgo.Record{Key: key}, parts) {
			break
		}
	}
	placed := &kgo.Record{Topic: saga.OrdersTopic, Partition: crc, Key: []byte(m.Order), Value: m.Encode()}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, placed).FirstErr(); err != nil {
		t.Fatal(err)
	}
	final := r.waitFor(t, ctx, 25*time.Second, "terminal", []string{m.Order}, func(o saga.Order, ok bool) bool { return ok && o.Terminal() })
	want := int64(saga.InitialStock)
	if final[m.Order].Status == saga.Completed {
		want -= m.Quantity
	}
	// Give any compensation time to apply, then read the stock and the
	// order's last state.
	time.Sleep(5 * time.Second)
	stock := int64(saga.InitialStock)
	exampletest.ReadAll(t, ctx, r.addr, saga.StockTopic, func(rec *kgo.Record) {
		if string(rec.Key) == m.Item {
			stock, _ = strconv.ParseInt(string(rec.Value), 10, 64)
		}
	})
	if stock != want {
		t.Errorf("stock of %s is %d after order %s ended %s (%s), want %d", m.Item, stock, m.Order, final[m.Order].Status, final[m.Order].Reason, want)
	}
	last, terminal := r.states(t, ctx)
	if o := last[m.Order]; !o.Settled() || len(terminal[m.Order]) != 1 {
		t.Errorf("order %s: %+v, terminal states entered %v; want settled in one", m.Order, o, terminal[m.Order])
	}
}
