package broker

// Metadata v0-12. v0 treats an empty topic list as "all topics"; v1+ uses
// a null list for that. Auto-creation follows AllowAutoTopicCreation (v4+;
// always allowed before) and auto.create.topics.enable; as in Kafka, the
// request that creates a topic answers it LEADER_NOT_AVAILABLE with no
// partitions, and clients ask again. So a topic deleted and at once asked
// for again is never answered with partitions its creation has not set
// up on every replica yet. v10+ may name
// topics by id; v10+ returns topic ids. Alone, a node lists itself as the
// only broker and controller; in a cluster the brokers are the registered,
// unfenced ones in the image (as Kafka lists only unfenced brokers) and
// the controller is the quorum's leader (-1 when none). A partition
// without a leader, or whose leader is fenced, is LEADER_NOT_AVAILABLE
// with leader -1, its replicas and ISR; v5+ lists the replicas on fenced
// or unregistered brokers as offline.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/server"
)

// handleMetadata lists brokers at their addresses on the listener the
// request came in on (a broker without that listener is left out, as
// Kafka does).
func (b *Broker) handleMetadata(c *server.Conn, req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	clustered := b.ctrl.Clustered()
	if !clustered {
		if host, port, ok := b.self().Endpoint(c.Listener); ok {
			resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: b.cfg.NodeID, Host: host, Port: port}}
		}
	}
	cluster := b.clusterID
	resp.ClusterID = &cluster
	resp.ControllerID = b.ctrl.ControllerID()

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	allowCreate := req.Version < 4 || req.AllowAutoTopicCreation
	var creating map[string]bool // topics this request created
	if !all && allowCreate {
		for _, t := range req.Topics {
			if t.Topic != nil && !b.topicExists(*t.Topic) && b.autoCreate(*t.Topic) {
				if creating == nil {
					creating = make(map[string]bool)
				}
				creating[*t.Topic] = true
			}
		}
	}
	b.ctrl.View(func(im *metadata.Image) {
		if clustered {
			for _, id := range im.UnfencedBrokerIDs() {
				if host, port, ok := im.Brokers[id].Endpoint(c.Listener); ok {
					resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: id, Host: host, Port: port})
				}
			}
		}
		if all {
			for _, name := range im.TopicNames() {
				resp.Topics = append(resp.Topics, describeTopic(im, im.Topics[name], clustered))
			}
			return
		}
		for _, rt := range req.Topics {
			var t *metadata.Topic
			if rt.Topic != nil && creating[*rt.Topic] {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = rt.Topic
				mt.ErrorCode = kerr.LeaderNotAvailable.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			if rt.Topic != nil {
				t = im.Topics[*rt.Topic]
			} else {
				t, _ = im.TopicByID(metadata.TopicID(rt.TopicID))
			}
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
				if rt.Topic == nil {
					mt.ErrorCode = kerr.UnknownTopicID.Code
				}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, describeTopic(im, t, clustered))
		}
	})
	return resp
}

func (b *Broker) topicExists(name string) bool {
	b.pmu.RLock()
	defer b.pmu.RUnlock()
	return b.topics[name] != nil
}

func describeTopic(im *metadata.Image, t *metadata.Topic, clustered bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = t.Internal
	for i, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(i)
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		mp.Replicas = p.Replicas
		mp.ISR = p.ISR
		if clustered {
			for _, r := range p.Replicas {
				if !im.Unfenced(r) {
					mp.OfflineReplicas = append(mp.OfflineReplicas, r)
				}
			}
			if p.Leader == -1 || !im.Unfenced(p.Leader) {
				mp.Leader = -1
				mp.ErrorCode = kerr.LeaderNotAvailable.Code
			}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
