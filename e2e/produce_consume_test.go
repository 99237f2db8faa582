package e2e

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Records produced at every acks level come back from a fresh consumer
// complete, and in production order within each partition.
func TestProducedRecordsAreConsumedInOrderPerPartition(t *testing.T) {
	for _, acks := range []struct {
		name string
		opt  kgo.Acks
	}{{"all", kgo.AllISRAcks()}, {"leader", kgo.LeaderAck()}, {"none", kgo.NoAck()}} {
		t.Run("acks="+acks.name, func(t *testing.T) {
			b, _ := startBroker(t, nil)
			topic := "orders"
			createTopic(t, newAdmin(t, b.Addr()), topic, 3, nil)
			opts := []kgo.Opt{kgo.RequiredAcks(acks.opt), kgo.DefaultProduceTopic(topic)}
			if acks.name != "all" {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			prod := newClient(t, b.Addr(), opts...)
			const n = 3000
			for i := range n {
				r := &kgo.Record{Key: []byte(strconv.Itoa(i % 17)), Value: []byte(strconv.Itoa(i))}
				prod.Produce(testCtx(t), r, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce: %v", err)
					}
				})
			}
			if err := prod.Flush(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			recs := consumeAll(t, b.Addr(), topic, n)
			if len(recs) != n {
				t.Fatalf("consumed %d records, want %d", len(recs), n)
			}
			last := map[string]int{}  // per key: values arrive increasing
			next := map[int32]int64{} // per partition: offsets are dense
			for _, r := range recs {
				v, _ := strconv.Atoi(string(r.Value))
				if prev, ok := last[string(r.Key)]; ok && v <= prev {
					t.Fatalf("key %s: value %d after %d", r.Key, v, prev)
				}
				last[string(r.Key)] = v
				if r.Offset != next[r.Partition] {
					t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
				}
				next[r.Partition]++
			}
		})
	}
}

// Data written before a clean shutdown is all there after a restart on the
// same directory, and new writes continue at the next offset.
func TestRestartKeepsDataAndContinuesOffsets(t *testing.T) {
	b, dir := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "t", 1, nil)
	produceValues(t, b.Addr(), "t", 0, 100)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := startBrokerIn(t, dir, nil)
	produceValues(t, b2.Addr(), "t", 100, 200)
	recs := consumeAll(t, b2.Addr(), "t", 200)
	for i, r := range recs {
		if string(r.Value) != strconv.Itoa(i) || r.Offset != int64(i) {
			t.Fatalf("record %d: offset %d value %s", i, r.Offset, r.Value)
		}
	}
}

func produceValues(t testing.TB, addr, topic string, from, to int) {
	t.Helper()
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic))
	for i := from; i < to; i++ {
		if err := cl.ProduceSync(testCtx(t), &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
}

// A topic that does not exist is created on first use when
// auto.create.topics.enable is true, and not when it is false.
func TestAutoCreateTopicsFollowsTheSetting(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		t.Run(fmt.Sprint(enabled), func(t *testing.T) {
			b, _ := startBroker(t, map[string]string{"auto.create.topics.enable": strconv.FormatBool(enabled), "num.partitions": "4"})
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr("fresh")
			req.Topics = append(req.Topics, rt)
			req.AllowAutoTopicCreation = true
			resp, err := req.RequestWith(testCtx(t), newClient(t, b.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			td := resp.Topics[0]
			if enabled {
				// As Kafka answers the request that creates a topic; the
				// next one lists it.
				if td.ErrorCode != kerr.LeaderNotAvailable.Code || len(td.Partitions) != 0 {
					t.Fatalf("auto-creating Metadata: %v with %d partitions, want LEADER_NOT_AVAILABLE with none", kerr.ErrorForCode(td.ErrorCode), len(td.Partitions))
				}
				if resp, err = req.RequestWith(testCtx(t), newClient(t, b.Addr())); err != nil {
					t.Fatal(err)
				}
				if td = resp.Topics[0]; td.ErrorCode != 0 || len(td.Partitions) != 4 {
					t.Fatalf("auto-created topic: %v, %d partitions", kerr.ErrorForCode(td.ErrorCode), len(td.Partitions))
				}
			}
			if !enabled && td.ErrorCode != kerr.UnknownTopicOrPartition.Code {
				t.Fatalf("topic was created with auto.create.topics.enable=false")
			}
		})
	}
}
