package bench

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Acks is the producer acknowledgement level. The zero value is AcksAll, the
// only level under which an acknowledged write is durable on every in-sync
// replica.
type Acks int8

const (
	// AcksAll is acks=all (-1): the leader answers once every in-sync
	// replica has the write.
	AcksAll Acks = iota
	// AcksLeader is acks=1: the leader answers once it has the write.
	AcksLeader
	// AcksNone is acks=0: the broker does not answer at all.
	AcksNone
)

// ParseAcks parses the spellings Kafka tools accept: "all" (or "-1"), "1"
// and "0".
func ParseAcks(s string) (Acks, error) {
	switch s {
	case "all", "-1":
		return AcksAll, nil
	case "1":
		return AcksLeader, nil
	case "0":
		return AcksNone, nil
	}
	return 0, fmt.Errorf("invalid acks %q: want all, 1 or 0", s)
}

// String returns the acks level as a user writes it.
func (a Acks) String() string {
	switch a {
	case AcksAll:
		return "all"
	case AcksLeader:
		return "1"
	case AcksNone:
		return "0"
	}
	return fmt.Sprintf("Acks(%d)", int8(a))
}

// ErrIdempotenceNeedsAcksAll is returned when idempotence is requested with
// acks other than all. Kafka's producer refuses the same combination: the
// duplicate detection of KIP-98 is only sound if every write is acknowledged
// by all in-sync replicas.
var ErrIdempotenceNeedsAcksAll = errors.New("idempotent produce requires acks=all")

// ProducerOpts returns the kgo options that produce with acks a, idempotent
// or not. `weir produce` and the bench both use it, so the CLI and the
// benchmark configure a producer the same way.
//
// Like Kafka's own producer, it asks for a missing topic to be created on
// first use: the broker's auto.create.topics.enable decides.
func ProducerOpts(a Acks, idempotent bool) ([]kgo.Opt, error) {
	var acks kgo.Acks
	switch a {
	case AcksAll:
		acks = kgo.AllISRAcks()
	case AcksLeader:
		acks = kgo.LeaderAck()
	case AcksNone:
		acks = kgo.NoAck()
	default:
		return nil, fmt.Errorf("invalid acks %v", a)
	}
	if idempotent && a != AcksAll {
		return nil, ErrIdempotenceNeedsAcksAll
	}
	opts := []kgo.Opt{kgo.RequiredAcks(acks), kgo.AllowAutoTopicCreation()}
	if !idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	return opts, nil
}
