package lab

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// statefulStore is the stateful worker's store; its changelog is
// eos.ChangelogTopic(group, statefulStore).
const statefulStore = "counts"

// statefulKeys is how many keys each partition's records are counted
// under.
const statefulKeys = 8

// statefulKey is the key a record with id in partition is counted under.
// Keys are per partition: a partition's store holds only its own keys,
// so the changelog's last value per key is that key's whole count.
func statefulKey(partition int32, id int64) string {
	return fmt.Sprintf("p%d-k%d", partition, id%statefulKeys)
}

// countByKey counts each input record under its statefulKey in the
// partition's store, and copies the record to the output as the eos
// worker does, so the checker also sees each input delivered once.
func countByKey(ctx context.Context, in *kgo.Record, s eos.Store) ([]*kgo.Record, error) {
	id := parseID(in.Value)
	if id < 0 {
		return nil, fmt.Errorf("record %s/%d@%d has no id", in.Topic, in.Partition, in.Offset)
	}
	if _, err := eos.AddInt64(s, []byte(statefulKey(in.Partition, id)), 1); err != nil {
		return nil, err
	}
	return []*kgo.Record{{Value: in.Value, Partition: in.Partition}}, nil
}
