package broker

// DescribeProducers v0 (KIP-664): the producers each partition tracks,
// with their epoch, last sequence and last timestamp. Coordinator epoch
// and transaction start offset are -1 until transactions are served.

import "github.com/twmb/franz-go/pkg/kmsg"

func (b *Broker) handleDescribeProducers(req *kmsg.DescribeProducersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		for _, idx := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = idx
			part, kerrc := b.partition(t.Topic, idx)
			if kerrc != nil {
				rp.ErrorCode = kerrc.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			for _, e := range part.Producers() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID = e.ProducerID
				ap.ProducerEpoch = int32(e.Epoch)
				ap.LastSequence = e.LastSeq()
				ap.LastTimestamp = e.LastTimestamp()
				ap.CoordinatorEpoch = -1
				ap.CurrentTxnStartOffset = -1
				if e.InTxn {
					ap.CurrentTxnStartOffset = e.TxnFirstOffset
				}
				rp.ActiveProducers = append(rp.ActiveProducers, ap)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
