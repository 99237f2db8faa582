package e2e

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeQuorumReq asks about the metadata log's partition.
func describeQuorumReq() *kmsg.DescribeQuorumRequest {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
	req.Topics = append(req.Topics, rt)
	return req
}

// describeQuorum asks node i alone.
func (tc *testCluster) describeQuorum(i int) (kmsg.DescribeQuorumResponseTopicPartition, error) {
	resp, err := tc.request(i, describeQuorumReq(), 5*time.Second)
	if err != nil {
		return kmsg.DescribeQuorumResponseTopicPartition{}, err
	}
	r := resp.(*kmsg.DescribeQuorumResponse)
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		tc.t.Fatalf("node %d: DescribeQuorum answered %d topics for one partition asked", i+1, len(r.Topics))
	}
	return r.Topics[0].Partitions[0], nil
}

// Only the quorum's leader describes it; the others refuse with
// NOT_LEADER_OR_FOLLOWER and name the leader. The leader's high watermark
// (the commit index) grows with every committed change, and it tracks every
// voter's log end offset and contact.
func TestDescribeQuorumIsAnsweredByTheLeaderAloneAndItsHighWatermarkGrows(t *testing.T) {
	tc := startCluster(t, 3)
	leader := tc.waitController(15 * time.Second)

	before, err := tc.describeQuorum(leader)
	if err != nil {
		t.Fatal(err)
	}
	if before.ErrorCode != 0 || before.LeaderID != int32(leader+1) || before.LeaderEpoch < 1 || before.HighWatermark < 1 {
		t.Fatalf("the leader, node %d, answers %+v", leader+1, before)
	}
	for i := range 3 {
		if i == leader {
			continue
		}
		p, err := tc.describeQuorum(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := kerr.ErrorForCode(p.ErrorCode); err != kerr.NotLeaderForPartition || p.LeaderID != int32(leader+1) {
			t.Fatalf("node %d, a follower, answers error %v naming leader %d; want NOT_LEADER_OR_FOLLOWER naming %d", i+1, err, p.LeaderID, leader+1)
		}
	}

	if err := tc.createTopic(leader, "grows-the-log"); err != nil {
		t.Fatal(err)
	}
	// The change is applied on the leader, so committed: no waiting for
	// the high watermark, only for the followers' acknowledgements.
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, err := tc.describeQuorum(leader)
		if err != nil {
			t.Fatal(err)
		}
		if after.HighWatermark <= before.HighWatermark {
			t.Fatalf("high watermark %d after a topic was created, %d before", after.HighWatermark, before.HighWatermark)
		}
		caughtUp := len(after.CurrentVoters) == 3
		for _, v := range after.CurrentVoters {
			caughtUp = caughtUp && v.LogEndOffset >= after.HighWatermark && v.LastFetchTimestamp > 0 && v.LastCaughtUpTimestamp > 0
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("voters not caught up with high watermark %d after 10s: %+v", after.HighWatermark, after.CurrentVoters)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A node that runs alone is a quorum of itself, whose high watermark is
// its metadata log's end offset.
func TestDescribeQuorumOnASingleNodeNamesItselfLeader(t *testing.T) {
	b, _ := startBroker(t, nil)
	cl := newClient(t, b.Addr())
	describe := func() kmsg.DescribeQuorumResponseTopicPartition {
		t.Helper()
		resp, err := describeQuorumReq().RequestWith(testCtx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.LeaderID != 1 || len(p.CurrentVoters) != 1 || p.CurrentVoters[0].ReplicaID != 1 || p.CurrentVoters[0].LogEndOffset != p.HighWatermark || p.HighWatermark < 0 {
			t.Fatalf("single node answers %+v", p)
		}
		return p
	}
	before := describe()
	createTopic(t, kadm.NewClient(cl), "one-more", 1, nil)
	if after := describe(); after.HighWatermark <= before.HighWatermark {
		t.Fatalf("high watermark %d after a topic was created, %d before", after.HighWatermark, before.HighWatermark)
	}
}
