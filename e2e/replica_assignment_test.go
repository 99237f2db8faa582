package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Explicit replica assignments in CreateTopics and CreatePartitions:
// placed exactly as given when they name registered brokers, refused
// with INVALID_REPLICA_ASSIGNMENT and a message when they name an unknown
// broker, repeat one or give partitions different replica counts, as
// Kafka checks them.

// orEmpty is *s, or "" for nil.
func orEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// requester sends one request and returns its answer.
type requester func(req kmsg.Request) (kmsg.Response, error)

// createAssigned sends CreateTopics for topic with the given replicas per
// partition and returns its message and code.
func createAssigned(t *testing.T, send requester, topic string, partitions int32, rf int16, assignment ...[]int32) (msg string, err error) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, rf
	for p, replicas := range assignment {
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, kmsg.CreateTopicsRequestTopicReplicaAssignment{Partition: int32(p), Replicas: replicas})
	}
	req.Topics = append(req.Topics, rt)
	resp, err := send(req)
	if err != nil {
		t.Fatalf("CreateTopics %s: %v", topic, err)
	}
	r := resp.(*kmsg.CreateTopicsResponse).Topics[0]
	return orEmpty(r.ErrorMessage), kerr.ErrorForCode(r.ErrorCode)
}

// growAssigned sends CreatePartitions growing topic to count with the
// given replicas per new partition.
func growAssigned(t *testing.T, send requester, topic string, count int32, assignment ...[]int32) (msg string, err error) {
	t.Helper()
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, count
	for _, replicas := range assignment {
		rt.Assignment = append(rt.Assignment, kmsg.CreatePartitionsRequestTopicAssignment{Replicas: replicas})
	}
	req.Topics = append(req.Topics, rt)
	resp, err := send(req)
	if err != nil {
		t.Fatalf("CreatePartitions %s: %v", topic, err)
	}
	r := resp.(*kmsg.CreatePartitionsResponse).Topics[0]
	return orEmpty(r.ErrorMessage), kerr.ErrorForCode(r.ErrorCode)
}

// placement is topic's replicas and leader per partition in send's
// Metadata, or nil while it does not list the topic with partitions
// partitions.
func placement(send requester, topic string, partitions int) (replicas [][]int32, leaders []int32) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(topic)}}
	resp, err := send(req)
	if err != nil {
		return nil, nil
	}
	ts := resp.(*kmsg.MetadataResponse).Topics
	if len(ts) != 1 || ts[0].ErrorCode != 0 || len(ts[0].Partitions) != partitions {
		return nil, nil
	}
	replicas, leaders = make([][]int32, partitions), make([]int32, partitions)
	for _, p := range ts[0].Partitions {
		replicas[p.Partition], leaders[p.Partition] = p.Replicas, p.Leader
	}
	return replicas, leaders
}

// awaitPlacement waits until send's Metadata shows topic placed as want,
// each partition led by its first replica.
func awaitPlacement(t *testing.T, send requester, topic string, want ...[]int32) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		replicas, leaders := placement(send, topic, len(want))
		ok := replicas != nil
		for p := range want {
			ok = ok && slices.Equal(replicas[p], want[p]) && leaders[p] == want[p][0]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s placed as %v with leaders %v, want %v led by the first replica", topic, replicas, leaders, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantRefused checks a refusal's code and that it says why.
func wantRefused(t *testing.T, what string, got error, msg string, want error) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %v, want %v", what, got, want)
	} else if msg == "" {
		t.Errorf("%s: %v with no message", what, got)
	}
}

func TestReplicaAssignmentsOnOneNodeArePlacedAsGivenOrRefused(t *testing.T) {
	b, _ := startBroker(t, nil)
	cl := newClient(t, b.Addr())
	send := func(req kmsg.Request) (kmsg.Response, error) { return cl.Request(testCtx(t), req) }
	brokers, err := newAdmin(t, b.Addr()).BrokerMetadata(testCtx(t))
	if err != nil || len(brokers.Brokers) != 1 {
		t.Fatalf("brokers %+v, %v", brokers, err)
	}
	n := brokers.Brokers[0].NodeID

	if msg, err := createAssigned(t, send, "placed", -1, -1, []int32{n}, []int32{n}); err != nil {
		t.Fatalf("CreateTopics naming the node itself: %v %s", err, msg)
	}
	awaitPlacement(t, send, "placed", []int32{n}, []int32{n})
	if msg, err := growAssigned(t, send, "placed", 3, []int32{n}); err != nil {
		t.Fatalf("CreatePartitions naming the node itself: %v %s", err, msg)
	}
	awaitPlacement(t, send, "placed", []int32{n}, []int32{n}, []int32{n})
	prod := newClient(t, b.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := prod.ProduceSync(testCtx(t), &kgo.Record{Topic: "placed", Partition: 2, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce to the assigned partition 2: %v", err)
	}

	for _, c := range []struct {
		name       string
		partitions int32
		rf         int16
		assignment [][]int32
		want       error
	}{
		{"an unknown broker", -1, -1, [][]int32{{n + 7}}, kerr.InvalidReplicaAssignment},
		{"the node twice", -1, -1, [][]int32{{n, n}}, kerr.InvalidReplicaAssignment},
		{"a partition with no replica", -1, -1, [][]int32{{n}, {}}, kerr.InvalidReplicaAssignment},
		{"a partition count as well", 1, -1, [][]int32{{n}}, kerr.InvalidRequest},
		{"a replication factor as well", -1, 1, [][]int32{{n}}, kerr.InvalidRequest},
	} {
		msg, err := createAssigned(t, send, "refused", c.partitions, c.rf, c.assignment...)
		wantRefused(t, "CreateTopics with "+c.name, err, msg, c.want)
	}
	if replicas, _ := placement(send, "refused", 1); replicas != nil {
		t.Fatalf("a refused CreateTopics created the topic: %v", replicas)
	}

	for _, c := range []struct {
		name       string
		assignment [][]int32
	}{
		{"an unknown broker", [][]int32{{n + 7}}},
		{"the node twice", [][]int32{{n, n}}},
		{"fewer assignments than partitions added", nil},
		{"more assignments than partitions added", [][]int32{{n}, {n}}},
	} {
		count := int32(4)
		if c.assignment == nil {
			count, c.assignment = 5, [][]int32{{n}}
		}
		msg, err := growAssigned(t, send, "placed", count, c.assignment...)
		wantRefused(t, "CreatePartitions with "+c.name, err, msg, kerr.InvalidReplicaAssignment)
	}
	if replicas, _ := placement(send, "placed", 3); replicas == nil {
		t.Fatal("a refused CreatePartitions changed the topic's partitions")
	}
}

func TestClusterReplicaAssignmentsArePlacedAsGivenOrRefused(t *testing.T) {
	tc := startCluster(t, 3)
	ctrl := tc.waitController(15 * time.Second)
	send := func(req kmsg.Request) (kmsg.Response, error) { return tc.request(ctrl, req, 15*time.Second) }

	if msg, err := createAssigned(t, send, "placed", -1, -1, []int32{3, 1}, []int32{2, 3}); err != nil {
		t.Fatalf("CreateTopics naming registered brokers: %v %s", err, msg)
	}
	if msg, err := growAssigned(t, send, "placed", 3, []int32{1, 2}); err != nil {
		t.Fatalf("CreatePartitions naming registered brokers: %v %s", err, msg)
	}
	for i := range 3 {
		awaitPlacement(t, func(req kmsg.Request) (kmsg.Response, error) { return tc.request(i, req, 2*time.Second) },
			"placed", []int32{3, 1}, []int32{2, 3}, []int32{1, 2})
	}
	// The placement serves: an acks=all write to each partition is
	// acknowledged once both of its replicas have it.
	prod := newClient(t, tc.c.Nodes[0].Addr, kgo.SeedBrokers(tc.seeds()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for p := range int32(3) {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "placed", Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("acks=all produce to assigned partition %d: %v", p, err)
		}
	}

	msg, err := createAssigned(t, send, "uneven", -1, -1, []int32{1, 2}, []int32{3})
	wantRefused(t, "CreateTopics with uneven replica counts", err, msg, kerr.InvalidReplicaAssignment)
	msg, err = createAssigned(t, send, "unknown", -1, -1, []int32{1, 9})
	wantRefused(t, "CreateTopics naming an unregistered broker", err, msg, kerr.InvalidReplicaAssignment)
	msg, err = createAssigned(t, send, "twice", -1, -1, []int32{2, 2})
	wantRefused(t, "CreateTopics naming a broker twice", err, msg, kerr.InvalidReplicaAssignment)
	msg, err = growAssigned(t, send, "placed", 4, []int32{3})
	wantRefused(t, "CreatePartitions with fewer replicas than the topic's", err, msg, kerr.InvalidReplicaAssignment)
}
