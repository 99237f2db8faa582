package broker

// AlterPartition v0-3 (KIP-497), sent by a partition's leader to the
// active controller to change the ISR; any other node answers
// NOT_CONTROLLER. v0-1 name topics, v2+ topic ids; v3 names each new ISR
// member with its broker epoch (KIP-903), of which the controller checks
// membership and liveness itself. The checks and the change are
// controller.AlterPartition's.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/metadata"
)

func (b *Broker) handleAlterPartition(req *kmsg.AlterPartitionRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterPartitionResponse)
	var changes []controller.ISRChange
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			ch := controller.ISRChange{Topic: t.Topic, Partition: p.Partition, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: p.NewISR}
			if req.Version >= 2 {
				ch.TopicID, ch.Topic = metadata.TopicID(t.TopicID), ""
			}
			if req.Version >= 3 {
				ch.NewISR = nil
				for _, m := range p.NewEpochISR {
					ch.NewISR = append(ch.NewISR, m.BrokerID)
					ch.NewISRBrokerEpochs = append(ch.NewISRBrokerEpochs, m.BrokerEpoch)
				}
			}
			changes = append(changes, ch)
		}
	}
	results, err := b.ctrl.AlterPartition(req.BrokerID, req.BrokerEpoch, changes)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp
	}
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionResponseTopic()
		rt.Topic, rt.TopidID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			r := results[i]
			i++
			rp := kmsg.NewAlterPartitionResponseTopicPartition()
			rp.Partition = p.Partition
			if r.Err != nil {
				rp.ErrorCode = r.Err.Code
				if req.Version < 2 && r.Err == kerr.UnknownTopicID {
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
			} else {
				rp.LeaderID, rp.LeaderEpoch, rp.ISR, rp.PartitionEpoch = r.Partition.Leader, r.Partition.LeaderEpoch, r.Partition.ISR, r.Partition.PartitionEpoch
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
