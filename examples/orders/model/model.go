// Package model holds what the services of the orders example agree on:
// the event topic, its payload and the items sold.
package model

// Topic carries one "order placed" event per order.
const Topic = "orders"

// OrderIDHeader is the record header holding the order id, the inventory
// service's idempotency key.
const OrderIDHeader = "order-id"

// Items are the products the shop sells.
var Items = []string{"apple", "bread", "cheese", "dates", "eggs"}

// InitialStock is each item's stock before the first order.
const InitialStock = 1_000_000

// Order is an order and the payload of its event.
type Order struct {
	ID       int64  `json:"id"`
	Item     string `json:"item"`
	Quantity int    `json:"quantity"`
}
