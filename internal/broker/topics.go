package broker

// CreateTopics v2-7, DeleteTopics v1-6, CreatePartitions v0-3.
// CreateTopics v5+ returns the resolved configs, partition count and
// replication factor; DeleteTopics v6 may name topics by id. Replica
// assignments are refused: one node leads every partition.

import (
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
		case len(t.ReplicaAssignment) > 0:
			err = &controller.Error{Code: kerr.InvalidReplicaAssignment, Msg: "manual replica assignment is not supported on a single node"}
		default:
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
					Configs: configs, ValidateOnly: req.ValidateOnly,
				})
				if err == nil {
					rt.TopicID = id
					rt.NumPartitions, rt.ReplicationFactor = parts, 1
					rt.Configs = createdConfigs(b.settings.Topic(configs), configs)
				}
			}
		}
		rt.ErrorCode, rt.ErrorMessage = errCode(err), errMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
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
		var err error
		if len(t.Assignment) > 0 {
			err = &controller.Error{Code: kerr.InvalidReplicaAssignment, Msg: "manual replica assignment is not supported on a single node"}
		} else {
			err = b.ctrl.CreatePartitions(t.Topic, t.Count, req.ValidateOnly)
		}
		rt.ErrorCode, rt.ErrorMessage = errCode(err), errMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
