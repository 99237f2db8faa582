package broker

// AlterPartitionReassignments v0 and ListPartitionReassignments v0
// (KIP-455), answered by the active controller; any other node answers
// NOT_CONTROLLER, which clients (franz-go's admin requests, Kafka's admin
// client) take as the cue to ask the controller Metadata names. null
// replicas cancel a partition's reassignment. The request's timeout is
// not waited on: the reply comes once the change is committed to the
// metadata quorum, and the move itself goes on in the background until
// the new replicas are in sync. v1 (KIP-860's
// AllowReplicationFactorChange) is not served. The checks and the change
// are controller.AlterPartitionReassignments's.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/controller"
)

func (b *Broker) handleAlterPartitionAssignments(req *kmsg.AlterPartitionAssignmentsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	var reqs []controller.Reassignment
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			reqs = append(reqs, controller.Reassignment{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas})
		}
	}
	results, err := b.ctrl.AlterPartitionReassignments(reqs)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
		return resp
	}
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			r := results[i]
			i++
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			if r.Err != nil {
				rp.ErrorCode = r.Err.Code
				rp.ErrorMessage = kmsg.StringPtr(r.Msg)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (b *Broker) handleListPartitionReassignments(req *kmsg.ListPartitionReassignmentsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	var only map[string][]int32
	if req.Topics != nil {
		only = make(map[string][]int32, len(req.Topics))
		for _, t := range req.Topics {
			only[t.Topic] = append(only[t.Topic], t.Partitions...)
		}
	}
	list, err := b.ctrl.ListPartitionReassignments(only)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
		return resp
	}
	for _, r := range list {
		if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != r.Topic {
			rt := kmsg.NewListPartitionReassignmentsResponseTopic()
			rt.Topic = r.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		rp.Partition, rp.Replicas = r.Partition, r.Replicas
		rp.AddingReplicas, rp.RemovingReplicas = r.Adding, r.Removing
		if rp.AddingReplicas == nil {
			rp.AddingReplicas = []int32{}
		}
		if rp.RemovingReplicas == nil {
			rp.RemovingReplicas = []int32{}
		}
		t := &resp.Topics[len(resp.Topics)-1]
		t.Partitions = append(t.Partitions, rp)
	}
	return resp
}
