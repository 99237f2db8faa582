package broker

// CreateTopics v2-7, DeleteTopics v1-6, CreatePartitions v0-3.
// CreateTopics v5+ returns the resolved configs, partition count and
// replication factor; DeleteTopics v6 may name topics by id. Explicit
// replica assignments are placed as given when they name registered
// brokers (controller/assignment.go); with one, CreateTopics' partition
// count and replication factor must be -1.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/controller"
)

func (b *Broker) handleCreateTopics(req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := make(map[string]int)
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		var err error
		switch {
		case seen[t.Topic] > 1:
			err = &controller.Error{Code: kerr.InvalidRequest, Msg: "topic named more than once in one request"}
		default:
			var assignment [][]int32
			assignment, err = createAssignment(t.ReplicaAssignment)
			if err != nil {
				break
			}
			configs := make(map[string]string, len(t.Configs))
			for _, c := range t.Configs {
				if c.Value == nil {
					err = &controller.Error{Code: kerr.InvalidConfig, Msg: "null value for " + c.Name}
					break
				}
				configs[c.Name] = *c.Value
			}
			if err == nil {
				var id [16]byte
				var parts int32
				id, parts, err = b.ctrl.CreateTopic(controller.CreateTopic{
					Name: t.Topic, Partitions: t.NumPartitions, ReplicationFactor: t.ReplicationFactor,
					Assignment: assignment, Configs: configs, ValidateOnly: req.ValidateOnly,
				})
				if err == nil {
					rt.TopicID = id
					// The replication factor the topic got: the one
					// asked for, the assignment's, or the default.
					rt.NumPartitions, rt.ReplicationFactor = parts, t.ReplicationFactor
					switch {
					case len(assignment) > 0:
						rt.ReplicationFactor = int16(len(assignment[0]))
					case t.ReplicationFactor == -1:
						rt.ReplicationFactor = int16(b.settings.Int("default.replication.factor"))
					}
					rt.Configs = createdConfigs(b.settings.Topic(configs), configs)
				}
			}
		}
		rt.ErrorCode, rt.ErrorMessage = errCode(err), errMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// createAssignment orders CreateTopics' replica assignment by partition:
// the partitions must be 0 to n-1, each named once.
func createAssignment(in []kmsg.CreateTopicsRequestTopicReplicaAssignment) ([][]int32, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([][]int32, len(in))
	for _, a := range in {
		switch {
		case a.Partition < 0 || int(a.Partition) >= len(in):
			return nil, &controller.Error{Code: kerr.InvalidReplicaAssignment, Msg: fmt.Sprintf("the assigned partitions must be numbered 0 to %d; %d is not", len(in)-1, a.Partition)}
		case out[a.Partition] != nil:
			return nil, &controller.Error{Code: kerr.InvalidReplicaAssignment, Msg: fmt.Sprintf("partition %d is assigned more than once", a.Partition)}
		}
		out[a.Partition] = a.Replicas
		if out[a.Partition] == nil {
			out[a.Partition] = []int32{} // named, with no replica: the controller refuses it
		}
	}
	return out, nil
}

func createdConfigs(resolved, overrides map[string]string) []kmsg.CreateTopicsResponseTopicConfig {
	var out []kmsg.CreateTopicsResponseTopicConfig
	for _, name := range config.TopicNames() {
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name = name
		v := resolved[name]
		c.Value = &v
		c.Source = int8(kmsg.ConfigSourceDefaultConfig)
		if _, ok := overrides[name]; ok {
			c.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
		}
		out = append(out, c)
	}
	return out
}

func (b *Broker) handleDeleteTopics(req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	del := func(name *string, id [16]byte) {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		var err error
		if name != nil {
			rt.Topic = name
			id, err = b.ctrl.DeleteTopic(*name)
			rt.TopicID = id
		} else {
			var n string
			n, err = b.ctrl.DeleteTopicByID(id)
			rt.TopicID = id
			if err == nil {
				rt.Topic = &n
			}
		}
		rt.ErrorCode, rt.ErrorMessage = errCode(err), errMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	if req.Version >= 6 {
		for _, t := range req.Topics {
			del(t.Topic, t.TopicID)
		}
	} else {
		for _, name := range req.TopicNames {
			del(&name, [16]byte{})
		}
	}
	return resp
}

func (b *Broker) handleCreatePartitions(req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		var assignment [][]int32
		for _, a := range t.Assignment {
			assignment = append(assignment, a.Replicas)
		}
		err := b.ctrl.CreatePartitions(t.Topic, t.Count, assignment, req.ValidateOnly)
		rt.ErrorCode, rt.ErrorMessage = errCode(err), errMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
