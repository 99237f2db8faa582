package e2e

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
)

// A Produce or Fetch sent to a node that does not lead the partition is
// answered NOT_LEADER_OR_FOLLOWER with the leader, its epoch and its
// endpoint (KIP-951), so a client moves on without asking for Metadata.
func TestClusterNamesTheLeaderWhenAskedTheWrongBroker(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)
	leaders := tc.createTopicN(leader, "hinted", 3)
	wrong := (int(leaders[0]) % 3) // a node index that does not lead partition 0
	want := tc.c.Nodes[leaders[0]-1].Addr
	endpoint := func(_, port int32, host string) string { return net.JoinHostPort(host, strconv.Itoa(int(port))) }

	pr := kmsg.NewPtrProduceRequest()
	pr.Acks, pr.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "hinted"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Timestamp: time.Now().UnixMilli()}, []batch.Record{{Value: []byte("v")}})
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	resp, err := tc.request(wrong, pr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	presp := resp.(*kmsg.ProduceResponse)
	got := presp.Topics[0].Partitions[0]
	if kerr.ErrorForCode(got.ErrorCode) != kerr.NotLeaderForPartition || got.CurrentLeader.LeaderID != leaders[0] || got.CurrentLeader.LeaderEpoch < 0 {
		t.Fatalf("produce v%d to node %d: error %d, current leader %+v; want NOT_LEADER_OR_FOLLOWER naming node %d", pr.Version, wrong+1, got.ErrorCode, got.CurrentLeader, leaders[0])
	}
	if len(presp.Brokers) != 1 || endpoint(presp.Brokers[0].NodeID, presp.Brokers[0].Port, presp.Brokers[0].Host) != want {
		t.Fatalf("produce response endpoints %+v; want node %d at %s", presp.Brokers, leaders[0], want)
	}

	fr := kmsg.NewPtrFetchRequest()
	fr.MaxWaitMillis, fr.MaxBytes = 100, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "hinted"
	ft.TopicID = topicIDOf(t, tc, leader, "hinted")
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	resp, err = tc.request(wrong, fr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fresp := resp.(*kmsg.FetchResponse)
	fgot := fresp.Topics[0].Partitions[0]
	if kerr.ErrorForCode(fgot.ErrorCode) != kerr.NotLeaderForPartition || fgot.CurrentLeader.LeaderID != leaders[0] {
		t.Fatalf("fetch v%d from node %d: error %d, current leader %+v; want NOT_LEADER_OR_FOLLOWER naming node %d", fr.Version, wrong+1, fgot.ErrorCode, fgot.CurrentLeader, leaders[0])
	}
	if len(fresp.Brokers) != 1 || endpoint(fresp.Brokers[0].NodeID, fresp.Brokers[0].Port, fresp.Brokers[0].Host) != want {
		t.Fatalf("fetch response endpoints %+v; want node %d at %s", fresp.Brokers, leaders[0], want)
	}
}

// topicIDOf is the topic id node i's Metadata gives topic.
func topicIDOf(t *testing.T, tc *testCluster, i int, topic string) [16]byte {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := tc.request(i, req, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.MetadataResponse).Topics[0].TopicID
}
