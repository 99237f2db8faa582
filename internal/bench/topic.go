package bench

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/brokererr"
)

// EnsureTopic creates topic with the given partition count and replication
// factor (-1 for the broker's default) unless it already exists. An existing
// topic is left as it is, whatever its partition count.
func EnsureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32, replicationFactor int16) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, partitions, replicationFactor, nil, topic)
	if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
		return nil
	}
	return fmt.Errorf("create topic %q: %w", topic, brokererr.WithMessage(err, resp.ErrMessage))
}

// availableRecords returns how many offsets lie between the log start and
// the high watermark of every partition of topic. Control batches occupy
// offsets too, so for transactional topics this over-counts records.
func availableRecords(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("list start offsets of %q: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("list end offsets of %q: %w", topic, err)
	}
	var n int64
	ends.Each(func(end kadm.ListedOffset) {
		if start, ok := starts.Lookup(end.Topic, end.Partition); ok {
			n += end.Offset - start.Offset
		}
	})
	return n, nil
}
