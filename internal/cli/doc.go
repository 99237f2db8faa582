// Package cli implements the client side of the weir binary: the topic,
// produce, consume and bench commands. They talk to any Kafka-compatible
// cluster through franz-go's kgo and kadm clients; nothing here knows how
// Weir itself stores or serves data.
//
// Every command returns its error from RunE and prints nothing about it, so
// the root command owns how a failure is reported. Commands read from
// cmd.InOrStdin and write to cmd.OutOrStdout and cmd.ErrOrStderr, so tests
// can drive them with buffers.
package cli
