package saga

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// Initial amounts of the resources the inventory and payment services
// hold: an item's stock and a customer's balance before any order.
const (
	InitialStock   = 60
	InitialBalance = 1000
)

// A ledger is a countable resource (an item's stock, a customer's
// balance) and, per order, what was taken from it: the inventory and the
// payment services are the same step with different names. Each order's
// entry makes the take and its compensation idempotent: an order takes at
// most once, and gives back at most once what it took.
type ledger struct {
	initial               int64
	take, give            string // the command types
	taken, refused, given string // the reply types
	key                   func(Message) string
	amount                func(Message) int64
	levelTopic            string
}

// Entries of an order in a ledger.
const (
	entryTaken   = "taken" // followed by the amount taken
	entryRefused = "refused"
	entryGiven   = "given-back"
)

// Inventory is the inventory service's Process function: ReserveStock
// takes an order's quantity from its item's stock if there is enough
// (StockReserved) or takes nothing (StockRejected); ReleaseStock gives a
// reservation back once (StockReleased). Each change of a stock is
// emitted to StockTopic.
func Inventory() eos.Process {
	return ledger{InitialStock, ReserveStock, ReleaseStock, StockReserved, StockRejected, StockReleased,
		func(m Message) string { return m.Item }, func(m Message) int64 { return m.Quantity }, StockTopic}.process
}

// Payment is the payment service's Process function: Charge takes an
// order's amount from its customer's balance if it suffices
// (PaymentSucceeded) or takes nothing (PaymentFailed); Refund gives a
// charge back once (Refunded). Each change of a balance is emitted to
// BalancesTopic.
func Payment() eos.Process {
	return ledger{InitialBalance, Charge, Refund, PaymentSucceeded, PaymentFailed, Refunded,
		func(m Message) string { return m.Customer }, func(m Message) int64 { return m.Amount }, BalancesTopic}.process
}

func (l ledger) process(_ context.Context, in *kgo.Record, store eos.Store) ([]*kgo.Record, error) {
	m, err := Decode(in.Value)
	if err != nil || m.Order == "" || l.key(m) == "" || (m.Type != l.take && m.Type != l.give) {
		return nil, nil
	}
	levelKey, entryKey := []byte("level/"+l.key(m)), []byte("order/"+m.Order)
	if len(levelKey) > eos.MaxKeyBytes || len(entryKey) > eos.MaxKeyBytes {
		return nil, nil
	}
	level, ok, err := eos.GetInt64(store, levelKey)
	if err != nil {
		return nil, err
	}
	if !ok {
		level = l.initial
	}
	entry, err := store.Get(entryKey)
	if err != nil {
		return nil, err
	}
	n := l.amount(m)
	var reply string
	switch {
	case m.Type == l.take && entry == nil && n <= level:
		level -= n
		reply, entry = l.taken, strconv.AppendInt([]byte(entryTaken+" "), n, 10)
	case m.Type == l.take && entry == nil:
		reply, entry = l.refused, []byte(entryRefused)
	case m.Type == l.give && strings.HasPrefix(string(entry), entryTaken+" "):
		// Give back what was taken, whatever the command says.
		n, err = strconv.ParseInt(strings.TrimPrefix(string(entry), entryTaken+" "), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("saga: entry of order %s: %w", m.Order, err)
		}
		if level, err = eos.CheckedAdd(level, n); err != nil {
			return nil, err
		}
		reply, entry = l.given, []byte(entryGiven)
	default:
		return nil, nil // a repeated command, or a give-back of nothing taken
	}
	if err := store.Put(entryKey, entry); err != nil {
		return nil, err
	}
	outs := []*kgo.Record{{Topic: OrdersTopic, Key: []byte(m.Order), Value: Message{Type: reply, Order: m.Order,
		Customer: m.Customer, Item: m.Item, Quantity: m.Quantity, Amount: m.Amount}.Encode()}}
	if reply != l.refused {
		if err := eos.PutInt64(store, levelKey, level); err != nil {
			return nil, err
		}
		outs = append(outs, &kgo.Record{Topic: l.levelTopic, Key: []byte(l.key(m)), Value: strconv.AppendInt(nil, level, 10)})
	}
	return outs, nil
}
