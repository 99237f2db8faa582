// Package e2e holds Weir's end-to-end tests: a real broker, embedded
// through pkg/weir or run as the weir binary, driven over TCP by real
// clients (franz-go, sarama, kcat) and by raw frames.
package e2e
