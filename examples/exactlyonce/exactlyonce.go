// Package exactlyonce is the exactly-once pattern inside Kafka:
// consume-transform-produce in transactions (KIP-98, KIP-447). Each
// transaction carries the outputs of a batch of input records and the
// input offsets that produced them, so both commit or neither does; a
// worker that fails mid-batch leaves an aborted transaction, and its
// successor (the same transactional id, which fences it) processes the
// batch again. Consumers of the output read with
// isolation.level=read_committed and see every output once.
//
// The pattern is pkg/eos; its settings for other clients are in
// docs/guarantees.md.
package exactlyonce

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// Upper is the transform: each input record's value, upper-cased, to the
// output topic, with the input's headers (its event id).
func Upper(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	return []*kgo.Record{{Value: []byte(strings.ToUpper(string(in.Value))), Headers: in.Headers}}, nil
}

// Worker runs fn over input, writing to output, as transactional id txnID
// in group, until ctx ends or fn fails.
func Worker(ctx context.Context, brokers []string, txnID, group, input, output string, fn eos.Transform) error {
	p, err := eos.New(eos.Config{
		Brokers: brokers, TransactionalID: txnID, Group: group,
		InputTopics: []string{input}, OutputTopic: output, MaxPerTxn: 20,
	}, fn)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Run(ctx)
}
