package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// A consumer's fetch from past the log end is answered OFFSET_OUT_OF_RANGE
// at once, as Kafka answers any fetch in which a partition errs, not after
// max.wait.ms: a client reading without a deadline (kafka-go) would
// otherwise hang on it, and any client would stall its reset.
func TestFetchPastTheLogEndAnswersOffsetOutOfRangeAtOnce(t *testing.T) {
	b, _ := startBroker(t, nil)
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "t", 1, nil)
	prod := newClient(t, b.Addr(), kgo.DefaultProduceTopic("t"))
	for range 3 {
		if err := prod.ProduceSync(testCtx(t), kgo.StringRecord("r")).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Topics by name: Fetch v12, the last version before topic ids.
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(kmsg.Fetch.Int16(), 12)
	cl := newClient(t, b.Addr(), kgo.MaxVersions(versions))

	for _, isolation := range []int8{0, 1} {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 30000, 1, 1<<20
		req.IsolationLevel = isolation
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.FetchOffset, p.PartitionMaxBytes = 0, 3+5, 1<<20
		req.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{p}}}

		// Far below the 30 s the fetch may wait, far above an answer's time.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := req.RequestWith(ctx, cl)
		cancel()
		if err != nil {
			t.Fatalf("isolation %d: fetch at the log end + 5 was not answered within 10 s of its 30 s max wait: %v", isolation, err)
		}
		got := resp.Topics[0].Partitions[0]
		if got.ErrorCode != kerr.OffsetOutOfRange.Code {
			t.Fatalf("isolation %d: fetch at the log end + 5: %v, want OFFSET_OUT_OF_RANGE", isolation, kerr.ErrorForCode(got.ErrorCode))
		}
		if got.HighWatermark != 3 {
			t.Fatalf("isolation %d: high watermark %d in the answer, want 3", isolation, got.HighWatermark)
		}
	}
}

// A follower's fetch from past the leader's log end is answered
// OFFSET_OUT_OF_RANGE at once too, as Kafka answers a follower: the
// follower truncates or resets on it rather than learn of it a max wait
// later.
func TestClusterFollowerFetchPastTheLogEndAnswersOffsetOutOfRangeAtOnce(t *testing.T) {
	tc := startCluster(t, 3)
	ctrl := tc.waitController(15 * time.Second)
	send := func(req kmsg.Request) (kmsg.Response, error) { return tc.request(ctrl, req, 15*time.Second) }
	if msg, err := createAssigned(t, send, "f", -1, -1, []int32{1, 2}); err != nil {
		t.Fatalf("CreateTopics: %v %s", err, msg)
	}
	awaitPlacement(t, func(req kmsg.Request) (kmsg.Response, error) { return tc.request(0, req, 2*time.Second) }, "f", []int32{1, 2})
	prod := newClient(t, tc.c.Nodes[0].Addr, kgo.DefaultProduceTopic("f"))
	for range 3 {
		if err := prod.ProduceSync(testCtx(t), kgo.StringRecord("r")).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// Node 2's fetch, as its replica fetcher sends it (by name, v12).
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(kmsg.Fetch.Int16(), 12)
	cl := newClient(t, tc.c.Nodes[0].Addr, kgo.MaxVersions(versions))
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 2, 30000, 1, 1<<20
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition, p.FetchOffset, p.PartitionMaxBytes = 0, 3+5, 1<<20
	req.Topics = []kmsg.FetchRequestTopic{{Topic: "f", Partitions: []kmsg.FetchRequestTopicPartition{p}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("follower fetch at the log end + 5 was not answered within 10 s of its 30 s max wait: %v", err)
	}
	if got := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]; got.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("follower fetch at the log end + 5: %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(got.ErrorCode))
	}
}
