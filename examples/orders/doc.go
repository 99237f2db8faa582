// Package orders is an example that carries exactly-once from one
// database to another through Weir: an order service writes each order
// and its event in one PostgreSQL transaction (pkg/outbox), the outbox
// relay publishes the events in Kafka transactions, and an inventory
// service applies each event to its own database through pkg/dedup's
// PostgreSQL store. Its test kills every process at random moments and
// checks that the stock is exactly what the orders imply. See README.md.
package orders
