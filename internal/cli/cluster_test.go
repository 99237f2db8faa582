package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestClusterDescribePrintsLagFencingAndLeaderlessPartitions(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	broker := func(id int32, fenced bool) kmsg.DescribeClusterResponseBroker {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port, b.IsFenced = id, "h", 9090+id, fenced
		return b
	}
	voter := func(id int32, end, fetchMs int64) kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
		v := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		v.ReplicaID, v.LogEndOffset, v.LastFetchTimestamp = id, end, fetchMs
		return v
	}
	q := kmsg.NewDescribeQuorumResponseTopicPartition()
	q.LeaderID, q.LeaderEpoch, q.HighWatermark = 2, 7, 40
	q.CurrentVoters = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{voter(1, 35, 999_750), voter(2, 42, 1_000_000), voter(3, -1, -1)}
	q.Observers = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{voter(5, 40, 999_900)}
	d := &clusterDescription{
		clusterID: "c", controller: 2, fencedKnown: true,
		brokers:         []kmsg.DescribeClusterResponseBroker{broker(1, false), broker(2, false), broker(4, true), broker(5, false)},
		quorum:          &q,
		leaderless:      []string{"a/3", "b/0"},
		underReplicated: 3, underMinISR: 1, uncleanElections: new(int64),
	}
	*d.uncleanElections = 2
	var buf bytes.Buffer
	d.print(&buf, now)
	out := buf.String()
	for _, want := range []string{
		"controller: 2\n",
		"1     h:9091   -                   broker,controller  follower  35               7    250ms ago",
		"2     h:9092   -                   broker,controller  leader    42               0    0s ago",
		"3     -        -                   controller         follower  -                -    -",
		"4     h:9094   -                   broker             -",
		"5     h:9095   -                   broker             observer  40               2    100ms ago",
		"metadata quorum: leader 2, epoch 7, high watermark 40, 3 voters\n",
		"fenced brokers: 1 (4)\n",
		"partitions without a leader: 2\n  a/3\n  b/0\n",
		"under-replicated partitions: 3\n",
		"under-min-ISR partitions: 1\n",
		"unclean leader elections: 2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}

	d = &clusterDescription{clusterID: "c", controller: -1, quorumErr: errors.New("no leader"), metadataErr: errors.New("down")}
	buf.Reset()
	d.print(&buf, now)
	for _, want := range []string{"controller: none", "metadata quorum: not described: no leader", "fenced brokers: unknown", "partitions without a leader: unknown: down", "unclean leader elections: unknown"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("missing %q in:\n%s", want, buf.String())
		}
	}
}
