package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// autoCreateMetadata is send's Metadata answer for topic with
// auto-creation allowed.
func autoCreateMetadata(t *testing.T, send requester, topic string) (kmsg.MetadataResponseTopic, error) {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(topic)}}
	req.AllowAutoTopicCreation = true
	resp, err := send(req)
	if err != nil {
		return kmsg.MetadataResponseTopic{}, err
	}
	return resp.(*kmsg.MetadataResponse).Topics[0], nil
}

// wantCreationPending checks the answer for a topic the Metadata request
// itself is creating: as Kafka answers it, LEADER_NOT_AVAILABLE and no
// partitions, so that a client asks again rather than use partitions the
// creation has not set up everywhere.
func wantCreationPending(t *testing.T, what string, mt kmsg.MetadataResponseTopic) {
	t.Helper()
	if mt.ErrorCode != kerr.LeaderNotAvailable.Code || len(mt.Partitions) != 0 {
		t.Fatalf("%s: %v with %d partitions, want LEADER_NOT_AVAILABLE with none", what, kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions))
	}
}

// awaitRecreated waits until send's Metadata lists topic under an id
// other than old, with partitions, and returns it.
func awaitRecreated(t *testing.T, send requester, topic string, old [16]byte) kmsg.MetadataResponseTopic {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mt, err := autoCreateMetadata(t, send, topic)
		if err == nil && mt.ErrorCode == 0 && len(mt.Partitions) > 0 && mt.TopicID != old {
			return mt
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not recreated within 20 s: %+v, %v", topic, mt, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A Metadata request that allows auto-creation, sent right after
// DeleteTopics, does not hand back the deleted topic: the request that
// creates the topic again answers LEADER_NOT_AVAILABLE with no
// partitions, as Kafka answers a topic it auto-creates, and the topic it
// creates is a new, empty one. The deleted records never come back.
func TestMetadataAfterDeleteTopicsCreatesANewEmptyTopicAndAnswersLeaderNotAvailable(t *testing.T) {
	b, _ := startBroker(t, map[string]string{"num.partitions": "2"})
	cl := newClient(t, b.Addr())
	send := func(req kmsg.Request) (kmsg.Response, error) { return cl.Request(testCtx(t), req) }
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "gone", 2, nil)
	prod := newClient(t, b.Addr(), kgo.DefaultProduceTopic("gone"))
	for range 5 {
		if err := prod.ProduceSync(testCtx(t), kgo.StringRecord("old")).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	before, err := autoCreateMetadata(t, send, "gone")
	if err != nil || before.ErrorCode != 0 {
		t.Fatalf("Metadata before the deletion: %+v, %v", before, err)
	}
	del, err := adm.DeleteTopics(testCtx(t), "gone")
	if err != nil || del["gone"].Err != nil {
		t.Fatalf("DeleteTopics: %v %+v", err, del)
	}

	mt, err := autoCreateMetadata(t, send, "gone")
	if err != nil {
		t.Fatal(err)
	}
	if mt.TopicID == before.TopicID && mt.ErrorCode == 0 {
		t.Fatalf("Metadata after DeleteTopics answered lists the deleted topic")
	}
	wantCreationPending(t, "Metadata creating the deleted topic again", mt)

	awaitRecreated(t, send, "gone", before.TopicID)
	ends, err := adm.ListEndOffsets(testCtx(t), "gone")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset != 0 {
			t.Errorf("recreated topic's partition %d: end offset %d (%v), want an empty partition", o.Partition, o.Offset, o.Err)
		}
	})
}

// In a cluster the same holds on a node other than the controller: until
// it applies the deletion it lists the old topic, while it applies it the
// topic is UNKNOWN_TOPIC_OR_PARTITION, and the request that then creates
// the topic again answers LEADER_NOT_AVAILABLE, all with no partitions
// but the old topic's; every node comes to list the new topic, empty,
// which takes writes.
func TestClusterMetadataAfterDeleteTopicsCreatesANewEmptyTopic(t *testing.T) {
	tc := startCluster(t, 3)
	ctrl := tc.waitController(15 * time.Second)
	other := (ctrl + 1) % 3
	on := func(i int) requester {
		return func(req kmsg.Request) (kmsg.Response, error) { return tc.request(i, req, 10*time.Second) }
	}
	if msg, err := createAssigned(t, on(ctrl), "gone", -1, -1, []int32{1, 2, 3}); err != nil {
		t.Fatalf("CreateTopics: %v %s", err, msg)
	}
	awaitPlacement(t, on(other), "gone", []int32{1, 2, 3})
	prod := newClient(t, tc.c.Nodes[0].Addr, kgo.SeedBrokers(tc.seeds()...), kgo.DefaultProduceTopic("gone"))
	for range 5 {
		if err := prod.ProduceSync(testCtx(t), kgo.StringRecord("old")).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	before, err := autoCreateMetadata(t, on(other), "gone")
	if err != nil || before.ErrorCode != 0 {
		t.Fatalf("Metadata before the deletion: %+v, %v", before, err)
	}

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = 10000
	req.TopicNames = []string{"gone"}
	req.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("gone")}}
	resp, err := tc.request(ctrl, req, 15*time.Second)
	if err != nil || resp.(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode != 0 {
		t.Fatalf("DeleteTopics: %v %+v", err, resp)
	}

	// Until node other has applied the deletion it lists the old topic;
	// while it applies it, the topic is unknown; then its request
	// creates the topic again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mt, err := autoCreateMetadata(t, on(other), "gone")
		switch {
		case err != nil || mt.ErrorCode == 0 && mt.TopicID == before.TopicID:
		case mt.ErrorCode == kerr.UnknownTopicOrPartition.Code && len(mt.Partitions) == 0:
		default:
			wantCreationPending(t, fmt.Sprintf("node %d's Metadata creating the deleted topic again", other+1), mt)
		}
		if err == nil && mt.ErrorCode == kerr.LeaderNotAvailable.Code {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d did not create the deleted topic again within 20 s: %+v, %v", other+1, mt, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 3 {
		awaitRecreated(t, on(i), "gone", before.TopicID)
	}
	adm := newAdmin(t, tc.c.Nodes[ctrl].Addr)
	ends, err := adm.ListEndOffsets(testCtx(t), "gone")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset != 0 {
			t.Errorf("recreated topic's partition %d: end offset %d (%v), want an empty partition", o.Partition, o.Offset, o.Err)
		}
	})
	if err := prod.ProduceSync(testCtx(t), kgo.StringRecord("new")).FirstErr(); err != nil {
		t.Fatalf("acks=all write to the recreated topic: %v", err)
	}
}
