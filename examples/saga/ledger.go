package saga

import (
	"bytes"
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

// ledgerLevelPrefix starts the store key of a resource's level.
const ledgerLevelPrefix = "level/"

// Entries of an order in a ledger.
const (
	entryTaken   = "taken" // followed by the amount taken and the resource it was taken from
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

// process answers every take and give-back command that names an order
// once, so that no order waits for ever for its reply: a take it cannot
// serve — its resource unnamed, or named too long for a key — is refused
// like a take beyond the level, and a give-back of nothing taken is
// answered without changing any level. A repeated command, answered the
// first time, is not answered again.
func (l ledger) process(_ context.Context, in *kgo.Record, store eos.Store) ([]*kgo.Record, error) {
	m, err := Decode(in.Value)
	if err != nil || m.Order == "" || (m.Type != l.take && m.Type != l.give) {
		return nil, nil // not a command of this service: nobody awaits an answer
	}
	reply := func(typ string) *kgo.Record {
		r := &kgo.Record{Topic: OrdersTopic, Key: []byte(m.Order), Partition: -1, Value: Message{Type: typ, Order: m.Order,
			Customer: m.Customer, Item: m.Item, Quantity: m.Quantity, Amount: m.Amount}.Encode()}
		if m.ReplyPartition != nil {
			r.Partition = *m.ReplyPartition // see ReplyPartitioner
		}
		return r
	}
	entryKey := []byte("order/" + m.Order)
	if len(entryKey) > eos.MaxKeyBytes {
		// No entry can record the order: refuse a take, and a give-back
		// has nothing to give (no take of this order was ever served).
		typ := l.refused
		if m.Type == l.give {
			typ = l.given
		}
		return []*kgo.Record{reply(typ)}, nil
	}
	entry, err := store.Get(entryKey)
	if err != nil {
		return nil, err
	}
	switch {
	case m.Type == l.take && entry == nil:
		return l.takeFrom(store, m, entryKey, reply)
	case m.Type == l.give && strings.HasPrefix(string(entry), entryTaken+" "):
		return l.giveBack(store, m, entryKey, entry, reply)
	case m.Type == l.give && !bytes.Equal(entry, []byte(entryGiven)):
		// A give-back of nothing taken: nothing changes, but the
		// command is answered.
		if err := store.Put(entryKey, []byte(entryGiven)); err != nil {
			return nil, err
		}
		return []*kgo.Record{reply(l.given)}, nil
	}
	return nil, nil // a repeated command: answered the first time
}

// takeFrom serves a first take of an order: it takes the amount from the
// resource's level if there is enough, and records what it took from
// which resource in the order's entry.
func (l ledger) takeFrom(store eos.Store, m Message, entryKey []byte, reply func(string) *kgo.Record) ([]*kgo.Record, error) {
	key := l.key(m)
	levelKey := []byte(ledgerLevelPrefix + key)
	if key == "" || len(levelKey) > eos.MaxKeyBytes {
		return []*kgo.Record{reply(l.refused)}, store.Put(entryKey, []byte(entryRefused))
	}
	level, err := l.level(store, levelKey)
	if err != nil {
		return nil, err
	}
	n := l.amount(m)
	if n > level {
		return []*kgo.Record{reply(l.refused)}, store.Put(entryKey, []byte(entryRefused))
	}
	level -= n
	entry := strconv.AppendInt([]byte(entryTaken+" "), n, 10)
	entry = append(append(entry, ' '), key...)
	if err := store.Put(entryKey, entry); err != nil {
		return nil, err
	}
	if err := eos.PutInt64(store, levelKey, level); err != nil {
		return nil, err
	}
	return []*kgo.Record{reply(l.taken), {Topic: l.levelTopic, Key: []byte(key), Value: strconv.AppendInt(nil, level, 10)}}, nil
}

// giveBack gives back once what the order's entry says it took, to the
// resource it took it from, whatever the command names: the entry, not
// the command, is the record of the take.
func (l ledger) giveBack(store eos.Store, m Message, entryKey, entry []byte, reply func(string) *kgo.Record) ([]*kgo.Record, error) {
	f := strings.SplitN(strings.TrimPrefix(string(entry), entryTaken+" "), " ", 2)
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("saga: entry of order %s: malformed %q", m.Order, entry)
	}
	key := l.key(m) // an entry written before entries named their resource
	if len(f) == 2 {
		key = f[1]
	}
	levelKey := []byte(ledgerLevelPrefix + key)
	level, err := l.level(store, levelKey)
	if err != nil {
		return nil, err
	}
	if level, err = eos.CheckedAdd(level, n); err != nil {
		return nil, err
	}
	if err := store.Put(entryKey, []byte(entryGiven)); err != nil {
		return nil, err
	}
	if err := eos.PutInt64(store, levelKey, level); err != nil {
		return nil, err
	}
	return []*kgo.Record{reply(l.given), {Topic: l.levelTopic, Key: []byte(key), Value: strconv.AppendInt(nil, level, 10)}}, nil
}

// level is a resource's level, its initial level if nothing changed it.
func (l ledger) level(store eos.Store, levelKey []byte) (int64, error) {
	level, ok, err := eos.GetInt64(store, levelKey)
	if err != nil || ok {
		return level, err
	}
	return l.initial, nil
}
