package saga

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// The order service's store keys, per partition of OrdersTopic: one per
// order, the partition's event time, and the index of the orders not yet
// terminal by deadline (dueindex.go).
var clockKey = []byte("event-time")

func orderKey(id string) []byte { return []byte("order/" + id) }

// StateChange is a record of StatesTopic: an order after a message
// changed it. Entered names the status the order entered with this
// change, if it entered one; a terminal status is entered once.
type StateChange struct {
	Cause   string `json:"cause"` // the message type, or "Timeout"
	Entered string `json:"entered,omitempty"`
	Order   Order  `json:"order"`
}

// DefaultMaxClockSkew is how far ahead of the order worker's wall clock a
// record's timestamp may be and still advance event time (see
// OrderServiceWithSkew).
const DefaultMaxClockSkew = 5 * time.Second

// OrderService is the order service's Process function with the default
// bound on clock skew, DefaultMaxClockSkew.
func OrderService(timeout time.Duration) eos.Process {
	return orderService(timeout, DefaultMaxClockSkew, time.Now)
}

// OrderServiceWithSkew is the order service's Process function. Its event
// time, per partition, is the largest timestamp among the records it has
// read there (placements, replies and the Tick records of RunTicker,
// which keep it moving on an idle partition) that were not more than
// maxSkew ahead of the worker's wall clock when it read them: one
// producer whose clock runs ahead cannot move the partition's event time
// past the others' by more than maxSkew, so it cannot time out orders
// that are served in time. An order placed at event time t is cancelled
// by the first record that brings event time to t+timeout or past it
// unless it is terminal by then. Deciding by record timestamps, not by
// the clock of the worker that happens to run the partition, makes the
// decision the same when a batch is processed again after an abort; the
// wall clock only decides whether a record stamped in the future counts,
// and only a record within maxSkew of that boundary can be judged
// differently when processed again later. Malformed messages, and
// replies for orders it does not know, are skipped.
func OrderServiceWithSkew(timeout, maxSkew time.Duration) eos.Process {
	return orderService(timeout, maxSkew, time.Now)
}

func orderService(timeout, maxSkew time.Duration, wall func() time.Time) eos.Process {
	return func(_ context.Context, in *kgo.Record, store eos.Store) ([]*kgo.Record, error) {
		m, err := Decode(in.Value)
		if err != nil {
			return nil, nil
		}
		ts := in.Timestamp.UnixMilli()
		if ts > saturatingAdd(wall().UnixMilli(), maxSkew.Milliseconds()) {
			ts = math.MinInt64 // stamped too far ahead: not evidence of time
		}
		now, err := advanceClock(store, ts)
		if err != nil {
			return nil, err
		}
		var outs []*kgo.Record
		// Timeouts first: a reply whose timestamp is past the deadline
		// is late, and is compensated by Step below.
		due, err := takeDue(store, now)
		if err != nil {
			return nil, err
		}
		for _, id := range due {
			o, err := loadOrder(store, id)
			if err != nil || o == nil {
				return nil, errors.Join(err, errors.New("saga: pending order "+id+" is not in the store"))
			}
			before := o.Status
			cmds := o.Expire(now)
			if o.Status == before {
				continue
			}
			out, err := saveOrder(store, in.Partition, o, "Timeout", before, cmds)
			if err != nil {
				return nil, err
			}
			outs = append(outs, out...)
		}
		switch m.Type {
		case Tick:
		case OrderPlaced:
			if m.Order == "" || len(orderKey(m.Order)) > eos.MaxKeyBytes {
				break
			}
			if o, err := loadOrder(store, m.Order); err != nil {
				return nil, err
			} else if o != nil {
				break // placed already
			}
			o, cmds := Place(m, saturatingAdd(now, max(timeout.Milliseconds(), 1)))
			if !o.Terminal() {
				ok, err := indexOrder(store, o)
				if err != nil {
					return nil, err
				}
				if !ok {
					// Shed: too many orders fall due in the same second.
					o.Status, o.Reason, o.Stock, cmds = Cancelled, Overloaded, "", nil
				}
			}
			out, err := saveOrder(store, in.Partition, o, m.Type, "", cmds)
			if err != nil {
				return nil, err
			}
			outs = append(outs, out...)
		default:
			o, err := loadOrder(store, m.Order)
			if err != nil {
				return nil, err
			}
			if o == nil {
				break
			}
			before := *o
			cmds := o.Step(m)
			if *o == before {
				break
			}
			if o.Terminal() && !before.Terminal() {
				if err := unindexOrder(store, o); err != nil {
					return nil, err
				}
			}
			out, err := saveOrder(store, in.Partition, o, m.Type, before.Status, cmds)
			if err != nil {
				return nil, err
			}
			outs = append(outs, out...)
		}
		return outs, nil
	}
}

// saturatingAdd is a+b for b >= 0, or math.MaxInt64 if that overflows: a
// deadline past the end of time never passes.
func saturatingAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// advanceClock raises the partition's event time to ts and returns it.
func advanceClock(store eos.Store, ts int64) (int64, error) {
	now, _, err := eos.GetInt64(store, clockKey)
	if err != nil || ts <= now {
		return now, err
	}
	return ts, eos.PutInt64(store, clockKey, ts)
}

func loadOrder(store eos.Store, id string) (*Order, error) {
	b, err := store.Get(orderKey(id))
	if err != nil || b == nil {
		return nil, err
	}
	var o Order
	return &o, json.Unmarshal(b, &o)
}

// saveOrder stores o and returns the records of its change: the state
// change and the commands, each to its service's topic, each naming the
// partition of OrdersTopic the order lives on for its reply.
func saveOrder(store eos.Store, partition int32, o *Order, cause, before string, cmds []Message) ([]*kgo.Record, error) {
	b, err := marshal(o)
	if err != nil {
		return nil, err
	}
	if err := store.Put(orderKey(o.ID), b); err != nil {
		return nil, err
	}
	sc := StateChange{Cause: cause, Order: *o}
	if o.Status != before {
		sc.Entered = o.Status
	}
	v, err := marshal(sc)
	if err != nil {
		return nil, err
	}
	outs := []*kgo.Record{{Topic: StatesTopic, Key: []byte(o.ID), Value: v}}
	for _, c := range cmds {
		// The reply must come back to the partition whose store holds
		// the order, whichever partitioner placed it there.
		c.ReplyPartition = &partition
		r := &kgo.Record{Topic: InventoryTopic, Key: []byte(c.Item), Value: c.Encode()}
		if c.Type == Charge || c.Type == Refund {
			r.Topic, r.Key = PaymentsTopic, []byte(c.Customer)
		}
		outs = append(outs, r)
	}
	return outs, nil
}
