package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
)

// partitionAbortPage confirms the abort of a transaction at one
// partition.
type partitionAbortPage struct {
	Topic       string
	Partition   int32
	StartOffset int64
	ProducerID  int64
	Epoch       int16
}

// partitionAbort ends a hanging transaction at one partition as Kafka's
// kafka-transactions.sh abort and `weir txn abort` do (KIP-664): it finds
// the producer whose open transaction there starts at the given offset
// and writes an ABORT marker for it with WriteTxnMarkers, which moves the
// partition's last stable offset past it. It is for a transaction its
// coordinator no longer knows (the transactions page aborts the ones it
// does, everywhere at once); the broker checks ClusterAction on the
// cluster, as for any WriteTxnMarkers. The first POST shows what will be
// aborted, a POST with confirm=yes does it.
func (c *Console) partitionAbort(ctx context.Context, s *session, r *http.Request) (view, error) {
	if err := r.ParseForm(); err != nil {
		return view{}, badRequestf("%v", err)
	}
	topic := r.PostForm.Get("topic")
	partition, err1 := strconv.ParseInt(r.PostForm.Get("partition"), 10, 32)
	start, err2 := strconv.ParseInt(r.PostForm.Get("start_offset"), 10, 64)
	if topic == "" || err1 != nil || err2 != nil || partition < 0 || start < 0 {
		return view{}, badRequestf("a topic, partition and start offset are required")
	}
	described, err := s.adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {int32(partition): {}}})
	if err != nil {
		return view{}, err
	}
	var target *kadm.DescribedProducer
	described.EachProducer(func(p kadm.DescribedProducer) {
		if p.Partition == int32(partition) && p.CurrentTxnStartOffset == start {
			target = &p
		}
	})
	if target == nil {
		return view{}, badRequestf("no open transaction starts at offset %d of %s-%d", start, topic, partition)
	}
	if r.PostForm.Get("confirm") != "yes" {
		return view{name: "partabort", title: fmt.Sprintf("Abort at %s-%d", topic, partition), data: partitionAbortPage{
			Topic: topic, Partition: int32(partition), StartOffset: start, ProducerID: target.ProducerID, Epoch: target.ProducerEpoch}}, nil
	}
	resp, err := s.adm.WriteTxnMarkers(ctx, kadm.TxnMarkers{
		ProducerID: target.ProducerID, ProducerEpoch: target.ProducerEpoch, Commit: false,
		CoordinatorEpoch: target.CoordinatorEpoch, Topics: kadm.TopicsSet{topic: {int32(partition): {}}},
	})
	if err != nil {
		return view{}, err
	}
	var failure error
	resp.EachPartition(func(p kadm.TxnMarkersPartitionResponse) {
		if p.Err != nil {
			failure = fmt.Errorf("abort at %s-%d: %w", p.Topic, p.Partition, p.Err)
		}
	})
	if failure != nil {
		return view{}, failure
	}
	return view{redirect: "/topic?name=" + url.QueryEscape(topic) + "&aborted=" + strconv.FormatInt(start, 10)}, nil
}
