package console

import (
	"context"
	"errors"
	"net/http"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// topicRow is one topic of the topics list.
type topicRow struct {
	Name            string
	Internal        bool
	Partitions      int
	Replication     int
	UnderReplicated int
	Offline         int
	HighWatermarks  int64 // the sum of the partitions' high watermarks
	Err             string
}

func (c *Console) topics(ctx context.Context, s *session, _ *http.Request) (view, error) {
	md, err := s.adm.Metadata(ctx)
	if err != nil {
		return view{}, err
	}
	ends, err := s.adm.ListEndOffsets(ctx)
	if err != nil && !isShardErr(err) {
		return view{}, err
	}
	rows := make([]topicRow, 0, len(md.Topics))
	for _, t := range md.Topics {
		row := topicRow{Name: t.Topic, Internal: t.IsInternal, Partitions: len(t.Partitions)}
		if t.Err != nil {
			row.Err = t.Err.Error()
		}
		for _, p := range t.Partitions {
			row.Replication = max(row.Replication, len(p.Replicas))
			switch {
			case p.Leader < 0:
				row.Offline++
			case len(p.ISR) < len(p.Replicas):
				row.UnderReplicated++
			}
			if o, ok := ends.Lookup(t.Topic, p.Partition); ok && o.Err == nil {
				row.HighWatermarks += o.Offset
			}
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return view{name: "topics", title: "Topics", data: rows}, nil
}

// topicPage is one topic: its partitions and the producers that wrote
// them.
type topicPage struct {
	Name       string
	Notice     string
	Partitions []partitionRow
	Producers  []kadm.DescribedProducer
}

// partitionRow is one partition as metadata and ListOffsets describe it.
type partitionRow struct {
	Partition   int32
	Leader      int32
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	LogStart    int64
	HW          int64
	LSO         int64
	Err         string
}

func (c *Console) topic(ctx context.Context, s *session, r *http.Request) (view, error) {
	name := r.URL.Query().Get("name")
	if name == "" {
		return view{}, badRequestf("which topic? (?name=)")
	}
	md, err := s.adm.Metadata(ctx, name)
	if err != nil {
		return view{}, err
	}
	t, ok := md.Topics[name]
	if !ok {
		return view{}, kerr.UnknownTopicOrPartition
	}
	if t.Err != nil {
		return view{}, t.Err
	}
	// The three lists are ListOffsets at the earliest, the latest
	// read_uncommitted (the high watermark) and the latest read_committed
	// (the last stable offset).
	starts, err := s.adm.ListStartOffsets(ctx, name)
	if err != nil && !isShardErr(err) {
		return view{}, err
	}
	ends, err := s.adm.ListEndOffsets(ctx, name)
	if err != nil && !isShardErr(err) {
		return view{}, err
	}
	stables, err := s.adm.ListCommittedOffsets(ctx, name)
	if err != nil && !isShardErr(err) {
		return view{}, err
	}
	p := topicPage{Name: name}
	if at := r.URL.Query().Get("aborted"); at != "" {
		p.Notice = "Wrote an ABORT marker for the transaction open since offset " + at + "."
	}
	set := kadm.TopicsSet{}
	for _, pd := range t.Partitions.Sorted() {
		row := partitionRow{Partition: pd.Partition, Leader: pd.Leader, LeaderEpoch: pd.LeaderEpoch, Replicas: pd.Replicas, ISR: pd.ISR,
			LogStart: offsetOf(starts, name, pd.Partition), HW: offsetOf(ends, name, pd.Partition), LSO: offsetOf(stables, name, pd.Partition)}
		if pd.Err != nil {
			row.Err = pd.Err.Error()
		}
		p.Partitions = append(p.Partitions, row)
		set.Add(name, pd.Partition)
	}
	// Idempotent and transactional producers per partition (KIP-664): a
	// partition that cannot be described is left out, not the page.
	if described, err := s.adm.DescribeProducers(ctx, set); err == nil {
		described.EachProducer(func(dp kadm.DescribedProducer) { p.Producers = append(p.Producers, dp) })
		sort.Slice(p.Producers, func(i, j int) bool { return p.Producers[i].Less(&p.Producers[j]) })
	}
	return view{name: "topic", title: "Topic " + name, data: p}, nil
}

// offsetOf is a listed offset, or -1 where the partition failed.
func offsetOf(l kadm.ListedOffsets, topic string, partition int32) int64 {
	o, ok := l.Lookup(topic, partition)
	if !ok || o.Err != nil {
		return -1
	}
	return o.Offset
}

// isShardErr reports whether err is kadm's partial failure, whose
// missing partitions show as errors in their rows.
func isShardErr(err error) bool {
	var se *kadm.ShardErrors
	return errors.As(err, &se) && !isAuthFailure(err) // a failed login is never one node's error
}
