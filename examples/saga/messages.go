// Package saga is an order saga across three exactly-once services —
// order, inventory and payment — each a pkg/eos stateful processor: it
// consumes a message, changes its state store and produces its answer in
// one Kafka transaction. The order service orchestrates: its store holds
// a state machine per order that decides every step, the compensations
// (release reserved stock, refund a charge) and the timeout, so that each
// order reaches exactly one terminal state however the processes crash.
// See README.md for the flow and the guarantees.
package saga

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Topics, all with the same partition count within a service's inputs.
const (
	OrdersTopic    = "saga-orders"       // order service input: placements, replies, ticks; keyed by order
	InventoryTopic = "saga-inventory"    // inventory service input: reserve and release; keyed by item
	PaymentsTopic  = "saga-payments"     // payment service input: charge and refund; keyed by customer
	StatesTopic    = "saga-order-states" // order service output: every change of an order; keyed by order
	StockTopic     = "saga-stock"        // inventory service output: an item's stock after each change
	BalancesTopic  = "saga-balances"     // payment service output: a customer's balance after each change
)

// Message types. Commands are sent by the order service; replies by the
// inventory and payment services to the order service.
const (
	OrderPlaced      = "OrderPlaced" // from a client
	Tick             = "Tick"        // advances the order service's event time on an idle partition
	ReserveStock     = "ReserveStock"
	ReleaseStock     = "ReleaseStock" // compensation of ReserveStock
	StockReserved    = "StockReserved"
	StockRejected    = "StockRejected"
	StockReleased    = "StockReleased"
	Charge           = "Charge"
	Refund           = "Refund" // compensation of Charge
	PaymentSucceeded = "PaymentSucceeded"
	PaymentFailed    = "PaymentFailed"
	Refunded         = "Refunded"
)

// Message is every record value of the saga's input topics, as JSON.
type Message struct {
	Type     string `json:"type"`
	Order    string `json:"order,omitempty"`
	Customer string `json:"customer,omitempty"`
	Item     string `json:"item,omitempty"`
	Quantity int64  `json:"quantity,omitempty"`
	Amount   int64  `json:"amount,omitempty"`
	// ReplyPartition, in a command, is the partition of OrdersTopic the
	// order lives on: its reply is produced there explicitly rather than
	// by hashing the order id, since the client that placed the order may
	// have used another partitioner than the services'.
	ReplyPartition *int32 `json:"reply_partition,omitempty"`
}

// Encode is m as a record value.
func (m Message) Encode() []byte {
	b, err := marshal(m)
	if err != nil {
		panic(err) // a struct of strings and integers always marshals
	}
	return b
}

// marshal is v as JSON without HTML escaping: escaping writes '<', '>'
// and '&' as six bytes each, so a value of such characters would grow
// sixfold between the record read and the records written, past the
// largest record a producer may send.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Decode parses a record value; a message that is not JSON, has no type
// or carries a negative quantity or amount is an error.
func Decode(b []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("saga: malformed message: %w", err)
	}
	if m.Type == "" || m.Quantity < 0 || m.Amount < 0 {
		return m, fmt.Errorf("saga: invalid message %q", b)
	}
	return m, nil
}
