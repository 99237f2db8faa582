// Package inventory is a stateful exactly-once stream processor: the
// inventory aggregator. It reads order and restock events keyed by item
// and keeps each item's stock in a pkg/eos state store, whose changes
// commit in the same Kafka transaction as the stock updates it emits and
// the input offsets (what Kafka Streams calls processing.guarantee=
// exactly_once_v2). Run as several workers (cmd: ./worker), any of them —
// and the broker — may be killed at any moment: the stock of every item
// stays initial + restocks − orders, in the output topic and in the
// store's interactive query.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// The application's names.
const (
	EventsTopic = "inventory-events" // input: order and restock events keyed by item
	StockTopic  = "stock"            // output: each item's new stock, keyed by item
	Group       = "inventory-aggregator"
	StoreName   = "stock"
)

// InitialStock is the stock of an item before its first event.
const InitialStock = 1000

// Event kinds, the first word of an event's value.
const (
	Order   = "order"
	Restock = "restock"
)

// Event encodes an event's value: its kind and quantity.
func Event(kind string, quantity int64) []byte {
	return []byte(kind + " " + strconv.FormatInt(quantity, 10))
}

// Delta is the stock change an event's value asks for.
func Delta(value []byte) (int64, error) {
	kind, q, ok := strings.Cut(string(value), " ")
	n, err := strconv.ParseInt(q, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("inventory: malformed event %q", value)
	}
	switch kind {
	case Order:
		return -n, nil
	case Restock:
		return n, nil
	}
	return 0, fmt.Errorf("inventory: unknown event kind %q", kind)
}

// Stock is the processor: it applies an event to its item's stock and
// emits the new stock. Bad input is skipped, not retried forever: a
// malformed event, an event without an item, an item key longer than the
// store holds (eos.ErrInvalidKey) and an event that would take the stock
// outside the int64 range (eos.ErrOverflow) change nothing and emit
// nothing.
func Stock(_ context.Context, in *kgo.Record, store eos.Store) ([]*kgo.Record, error) {
	d, err := Delta(in.Value)
	if err != nil || len(in.Key) == 0 {
		return nil, nil
	}
	v, ok, err := eos.GetInt64(store, in.Key)
	if err != nil {
		return nil, err
	}
	if !ok {
		v = InitialStock
	}
	if v, err = eos.CheckedAdd(v, d); err != nil {
		return nil, nil
	}
	if err := eos.PutInt64(store, in.Key, v); errors.Is(err, eos.ErrInvalidKey) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return []*kgo.Record{{Key: in.Key, Value: strconv.AppendInt(nil, v, 10)}}, nil
}
