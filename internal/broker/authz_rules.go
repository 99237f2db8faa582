package broker

// The per-API authorization rules (see authz.go), as Kafka applies them.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/acl"
)

// split keeps in *xs the elements allowed says yes to and returns the
// others.
func split[T any](xs *[]T, allowed func(T) bool) []T {
	var kept, refused []T
	for _, x := range *xs {
		if allowed(x) {
			kept = append(kept, x)
		} else {
			refused = append(refused, x)
		}
	}
	if refused != nil {
		*xs = kept
	}
	return refused
}

// refuseEach takes out of *xs the elements allowed says no to, and
// answers each of them with answer (which appends its refusal to the
// response) once the handler has answered the rest.
func refuseEach[T any](xs *[]T, allowed func(T) bool, answer func(resp kmsg.Response, refused T)) verdict {
	refused := split(xs, allowed)
	if refused == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		for _, x := range refused {
			answer(resp, x)
		}
	}}
}

// Produce needs WRITE on each topic, and a transactional producer WRITE
// on its transactional id (else every partition gets
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
func authzProduce(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.ProduceRequest)
	if req.TransactionID != nil && !a.may(opWrite, acl.TransactionalID, *req.TransactionID) {
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, t := range req.Topics {
			resp.Topics = append(resp.Topics, produceErrors(t, codeTxnID))
		}
		return verdict{deny: resp}
	}
	refused := split(&req.Topics, func(t kmsg.ProduceRequestTopic) bool { return a.may(opWrite, acl.Topic, t.Topic) })
	if refused == nil {
		return verdict{}
	}
	if req.Acks == 0 {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		pr := resp.(*kmsg.ProduceResponse)
		for _, t := range refused {
			pr.Topics = append(pr.Topics, produceErrors(t, codeTopic))
		}
	}}
}

func produceErrors(t kmsg.ProduceRequestTopic, code int16) kmsg.ProduceResponseTopic {
	rt := kmsg.NewProduceResponseTopic()
	rt.Topic = t.Topic
	for _, p := range t.Partitions {
		rp := kmsg.NewProduceResponseTopicPartition()
		rp.Partition, rp.ErrorCode = p.Partition, code
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}

// Fetch: a follower's needs CLUSTER_ACTION; a consumer's READ on each
// topic.
func authzFetch(b *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.FetchRequest)
	if replicaOf(req) >= 0 {
		if a.cluster(opClusterAction) {
			return verdict{}
		}
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = codeCluster
		return verdict{deny: resp}
	}
	refused := split(&req.Topics, func(t kmsg.FetchRequestTopic) bool {
		name := t.Topic
		if req.Version >= 13 {
			n, ok := b.imageTopicName(t.TopicID)
			if !ok {
				return true // unknown ids are the handler's to answer
			}
			name = n
		}
		return a.may(opRead, acl.Topic, name)
	})
	if refused == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		fr := resp.(*kmsg.FetchResponse)
		for _, t := range refused {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codeTopic
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			fr.Topics = append(fr.Topics, rt)
		}
	}}
}

// ListOffsets needs DESCRIBE on each topic.
func authzListOffsets(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.ListOffsetsRequest)
	refused := split(&req.Topics, func(t kmsg.ListOffsetsRequestTopic) bool { return a.may(opDescribe, acl.Topic, t.Topic) })
	if refused == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		lr := resp.(*kmsg.ListOffsetsResponse)
		for _, t := range refused {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codeTopic
				rt.Partitions = append(rt.Partitions, rp)
			}
			lr.Topics = append(lr.Topics, rt)
		}
	}}
}

// Metadata lists only the topics the principal may DESCRIBE; one asked
// for by name that it may not gets TOPIC_AUTHORIZATION_FAILED, and one
// that does not exist is created only with CREATE on the cluster or the
// topic (otherwise UNKNOWN_TOPIC_OR_PARTITION).
func authzMetadata(b *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.MetadataRequest)
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		return verdict{after: func(resp kmsg.Response) {
			mr := resp.(*kmsg.MetadataResponse)
			split(&mr.Topics, func(t kmsg.MetadataResponseTopic) bool {
				return t.Topic != nil && a.may(opDescribe, acl.Topic, *t.Topic)
			})
		}}
	}
	mayCreate := a.cluster(opCreate)
	var denied, unknown []kmsg.MetadataRequestTopic
	kept := req.Topics[:0:0]
	for _, t := range req.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		} else if n, ok := b.imageTopicName(t.TopicID); ok {
			name = n
		} else {
			kept = append(kept, t)
			continue
		}
		switch {
		case !a.may(opDescribe, acl.Topic, name):
			denied = append(denied, t)
		case !b.topicExists(name) && !mayCreate && !a.may(opCreate, acl.Topic, name):
			unknown = append(unknown, t)
		default:
			kept = append(kept, t)
		}
	}
	if denied == nil && unknown == nil {
		return verdict{}
	}
	req.Topics = kept
	return verdict{after: func(resp kmsg.Response) {
		mr := resp.(*kmsg.MetadataResponse)
		for _, group := range []struct {
			ts   []kmsg.MetadataRequestTopic
			code int16
		}{{denied, codeTopic}, {unknown, 3 /* UNKNOWN_TOPIC_OR_PARTITION */}} {
			for _, t := range group.ts {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic, mt.TopicID, mt.ErrorCode = t.Topic, t.TopicID, group.code
				mr.Topics = append(mr.Topics, mt)
			}
		}
	}}
}

// OffsetCommit needs READ on the group and on each topic.
func authzOffsetCommit(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.OffsetCommitRequest)
	errorsFor := func(ts []kmsg.OffsetCommitRequestTopic, code int16) []kmsg.OffsetCommitResponseTopic {
		var out []kmsg.OffsetCommitResponseTopic
		for _, t := range ts {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out = append(out, rt)
		}
		return out
	}
	if !a.may(opRead, acl.Group, req.Group) {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		resp.Topics = errorsFor(req.Topics, codeGroup)
		return verdict{deny: resp}
	}
	refused := split(&req.Topics, func(t kmsg.OffsetCommitRequestTopic) bool { return a.may(opRead, acl.Topic, t.Topic) })
	if refused == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		cr := resp.(*kmsg.OffsetCommitResponse)
		cr.Topics = append(cr.Topics, errorsFor(refused, codeTopic)...)
	}}
}

// OffsetFetch needs DESCRIBE on the group; a topic the principal may not
// DESCRIBE is left out of an answer for all topics and refused when
// named.
func authzOffsetFetch(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.OffsetFetchRequest)
	if req.Version < 8 {
		if !a.may(opDescribe, acl.Group, req.Group) {
			resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
			resp.ErrorCode = codeGroup
			return verdict{deny: resp}
		}
		refused := split(&req.Topics, func(t kmsg.OffsetFetchRequestTopic) bool { return a.may(opDescribe, acl.Topic, t.Topic) })
		return verdict{after: func(resp kmsg.Response) {
			fr := resp.(*kmsg.OffsetFetchResponse)
			split(&fr.Topics, func(t kmsg.OffsetFetchResponseTopic) bool { return a.may(opDescribe, acl.Topic, t.Topic) })
			for _, t := range refused {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.ErrorCode = p, -1, codeTopic
					rt.Partitions = append(rt.Partitions, rp)
				}
				fr.Topics = append(fr.Topics, rt)
			}
		}}
	}
	refusedGroups := split(&req.Groups, func(g kmsg.OffsetFetchRequestGroup) bool { return a.may(opDescribe, acl.Group, g.Group) })
	refusedTopics := map[string][]kmsg.OffsetFetchRequestGroupTopic{}
	for i := range req.Groups {
		g := &req.Groups[i]
		if g.Topics != nil {
			refusedTopics[g.Group] = split(&g.Topics, func(t kmsg.OffsetFetchRequestGroupTopic) bool { return a.may(opDescribe, acl.Topic, t.Topic) })
		}
	}
	return verdict{after: func(resp kmsg.Response) {
		fr := resp.(*kmsg.OffsetFetchResponse)
		for i := range fr.Groups {
			g := &fr.Groups[i]
			split(&g.Topics, func(t kmsg.OffsetFetchResponseGroupTopic) bool { return a.may(opDescribe, acl.Topic, t.Topic) })
			for _, t := range refusedTopics[g.Group] {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, codeTopic
					rt.Partitions = append(rt.Partitions, rp)
				}
				g.Topics = append(g.Topics, rt)
			}
		}
		for _, g := range refusedGroups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, codeGroup
			fr.Groups = append(fr.Groups, rg)
		}
	}}
}

// FindCoordinator needs DESCRIBE on the group or transactional id.
func authzFindCoordinator(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.FindCoordinatorRequest)
	rt, code := acl.Group, codeGroup
	if req.CoordinatorType == coordinatorTransaction {
		rt, code = acl.TransactionalID, codeTxnID
	}
	if req.Version < 4 {
		if a.may(opDescribe, rt, req.CoordinatorKey) {
			return verdict{}
		}
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.ErrorCode, resp.NodeID, resp.Port = code, -1, -1
		return verdict{deny: resp}
	}
	refused := split(&req.CoordinatorKeys, func(k string) bool { return a.may(opDescribe, rt, k) })
	if refused == nil {
		return verdict{}
	}
	if len(req.CoordinatorKeys) == 0 {
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.Coordinators = coordinatorErrors(refused, code)
		return verdict{deny: resp}
	}
	return verdict{after: func(resp kmsg.Response) {
		fr := resp.(*kmsg.FindCoordinatorResponse)
		fr.Coordinators = append(fr.Coordinators, coordinatorErrors(refused, code)...)
	}}
}

func coordinatorErrors(keys []string, code int16) []kmsg.FindCoordinatorResponseCoordinator {
	var out []kmsg.FindCoordinatorResponseCoordinator
	for _, k := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.ErrorCode, c.NodeID, c.Port = k, code, -1, -1
		out = append(out, c)
	}
	return out
}

// DescribeGroups needs DESCRIBE on each group.
func authzDescribeGroups(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.DescribeGroupsRequest)
	return refuseEach(&req.Groups, func(g string) bool { return a.may(opDescribe, acl.Group, g) },
		func(resp kmsg.Response, g string) {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, codeGroup
			dr := resp.(*kmsg.DescribeGroupsResponse)
			dr.Groups = append(dr.Groups, rg)
		})
}

// ConsumerGroupDescribe needs DESCRIBE on each group (KIP-848).
func authzConsumerGroupDescribe(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.ConsumerGroupDescribeRequest)
	return refuseEach(&req.Groups, func(g string) bool { return a.may(opDescribe, acl.Group, g) },
		func(resp kmsg.Response, g string) {
			rg := kmsg.NewConsumerGroupDescribeResponseGroup()
			rg.Group, rg.ErrorCode = g, codeGroup
			dr := resp.(*kmsg.ConsumerGroupDescribeResponse)
			dr.Groups = append(dr.Groups, rg)
		})
}

// ListGroups lists every group with DESCRIBE on the cluster, else those
// the principal may DESCRIBE.
func authzListGroups(_ *Broker, a access, _ kmsg.Request) verdict {
	if a.cluster(opDescribe) {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		lr := resp.(*kmsg.ListGroupsResponse)
		split(&lr.Groups, func(g kmsg.ListGroupsResponseGroup) bool { return a.may(opDescribe, acl.Group, g.Group) })
	}}
}

// CreateTopics needs CREATE on the cluster or on each topic.
func authzCreateTopics(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.CreateTopicsRequest)
	var refused []kmsg.CreateTopicsRequestTopic
	if !a.cluster(opCreate) {
		refused = split(&req.Topics, func(t kmsg.CreateTopicsRequestTopic) bool { return a.may(opCreate, acl.Topic, t.Topic) })
	}
	return verdict{after: func(resp kmsg.Response) {
		cr := resp.(*kmsg.CreateTopicsResponse)
		// A created topic's configs are told only with DESCRIBE_CONFIGS
		// on it, as Kafka answers.
		for i := range cr.Topics {
			if t := &cr.Topics[i]; !a.may(opDescribeConfigs, acl.Topic, t.Topic) {
				t.Configs, t.ConfigErrorCode = nil, codeTopic
			}
		}
		for _, t := range refused {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic, rt.ErrorCode, rt.NumPartitions, rt.ReplicationFactor = t.Topic, codeTopic, -1, -1
			cr.Topics = append(cr.Topics, rt)
		}
	}}
}

// DeleteTopics needs DELETE on each topic.
func authzDeleteTopics(b *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.DeleteTopicsRequest)
	var refusedNames []string
	if req.Version < 6 {
		refusedNames = split(&req.TopicNames, func(n string) bool { return a.may(opDelete, acl.Topic, n) })
	}
	refused := split(&req.Topics, func(t kmsg.DeleteTopicsRequestTopic) bool {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		} else if n, ok := b.imageTopicName(t.TopicID); ok {
			name = n
		} else {
			return true
		}
		return a.may(opDelete, acl.Topic, name)
	})
	if refused == nil && refusedNames == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		dr := resp.(*kmsg.DeleteTopicsResponse)
		for _, n := range refusedNames {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.ErrorCode = &n, codeTopic
			dr.Topics = append(dr.Topics, rt)
		}
		for _, t := range refused {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.TopicID, rt.ErrorCode = t.Topic, t.TopicID, codeTopic
			dr.Topics = append(dr.Topics, rt)
		}
	}}
}

// DeleteRecords needs DELETE on each topic.
func authzDeleteRecords(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.DeleteRecordsRequest)
	refused := split(&req.Topics, func(t kmsg.DeleteRecordsRequestTopic) bool { return a.may(opDelete, acl.Topic, t.Topic) })
	if refused == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		dr := resp.(*kmsg.DeleteRecordsResponse)
		for _, t := range refused {
			rt := kmsg.NewDeleteRecordsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewDeleteRecordsResponseTopicPartition()
				rp.Partition, rp.ErrorCode, rp.LowWatermark = p.Partition, codeTopic, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			dr.Topics = append(dr.Topics, rt)
		}
	}}
}

// InitProducerId: a transactional producer needs WRITE on its id; an
// idempotent one IDEMPOTENT_WRITE on the cluster or, since KIP-679, WRITE
// on any topic.
func authzInitProducerID(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		if a.may(opWrite, acl.TransactionalID, *req.TransactionalID) {
			return verdict{}
		}
		resp.ErrorCode = codeTxnID
		return verdict{deny: resp}
	}
	if a.cluster(opIdempotentWrite) || a.az.AllowedAny(a.principal, a.host, opWrite, acl.Topic) {
		return verdict{}
	}
	resp.ErrorCode = codeCluster
	return verdict{deny: resp}
}

// OffsetForLeaderEpoch: a follower's needs CLUSTER_ACTION; a consumer's
// DESCRIBE on each topic.
func authzOffsetForLeaderEpoch(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.OffsetForLeaderEpochRequest)
	if req.ReplicaID >= 0 {
		if a.cluster(opClusterAction) {
			return verdict{}
		}
		resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
		for _, t := range req.Topics {
			resp.Topics = append(resp.Topics, epochErrors(t, codeCluster))
		}
		return verdict{deny: resp}
	}
	refused := split(&req.Topics, func(t kmsg.OffsetForLeaderEpochRequestTopic) bool { return a.may(opDescribe, acl.Topic, t.Topic) })
	if refused == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		er := resp.(*kmsg.OffsetForLeaderEpochResponse)
		for _, t := range refused {
			er.Topics = append(er.Topics, epochErrors(t, codeTopic))
		}
	}}
}

func epochErrors(t kmsg.OffsetForLeaderEpochRequestTopic, code int16) kmsg.OffsetForLeaderEpochResponseTopic {
	rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
	rt.Topic = t.Topic
	for _, p := range t.Partitions {
		rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
		rp.Partition, rp.ErrorCode, rp.LeaderEpoch, rp.EndOffset = p.Partition, code, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}

// AddPartitionsToTxn: a producer's (v0-3) needs WRITE on its
// transactional id and on each topic (a refused topic fails the request:
// the others get OPERATION_NOT_ATTEMPTED); the brokers' batched form (v4)
// needs CLUSTER_ACTION.
func authzAddPartitionsToTxn(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.AddPartitionsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version >= 4 {
		if a.cluster(opClusterAction) {
			return verdict{}
		}
		resp.ErrorCode = codeCluster
		return verdict{deny: resp}
	}
	txnOK := a.may(opWrite, acl.TransactionalID, req.TransactionalID)
	topicDenied := false
	for _, t := range req.Topics {
		if !a.may(opWrite, acl.Topic, t.Topic) {
			topicDenied = true
		}
	}
	if txnOK && !topicDenied {
		return verdict{}
	}
	for _, t := range req.Topics {
		code := codeTxnID
		if txnOK {
			code = 55 // OPERATION_NOT_ATTEMPTED
			if !a.may(opWrite, acl.Topic, t.Topic) {
				code = codeTopic
			}
		}
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return verdict{deny: resp}
}

// AddOffsetsToTxn needs WRITE on the transactional id and READ on the
// group.
func authzAddOffsetsToTxn(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case !a.may(opWrite, acl.TransactionalID, req.TransactionalID):
		resp.ErrorCode = codeTxnID
	case !a.may(opRead, acl.Group, req.Group):
		resp.ErrorCode = codeGroup
	default:
		return verdict{}
	}
	return verdict{deny: resp}
}

// TxnOffsetCommit needs WRITE on the transactional id, READ on the group
// and on each topic.
func authzTxnOffsetCommit(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.TxnOffsetCommitRequest)
	errorsFor := func(ts []kmsg.TxnOffsetCommitRequestTopic, code int16) []kmsg.TxnOffsetCommitResponseTopic {
		var out []kmsg.TxnOffsetCommitResponseTopic
		for _, t := range ts {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out = append(out, rt)
		}
		return out
	}
	code := int16(0)
	switch {
	case !a.may(opWrite, acl.TransactionalID, req.TransactionalID):
		code = codeTxnID
	case !a.may(opRead, acl.Group, req.Group):
		code = codeGroup
	}
	if code != 0 {
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		resp.Topics = errorsFor(req.Topics, code)
		return verdict{deny: resp}
	}
	refused := split(&req.Topics, func(t kmsg.TxnOffsetCommitRequestTopic) bool { return a.may(opRead, acl.Topic, t.Topic) })
	if refused == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		tr := resp.(*kmsg.TxnOffsetCommitResponse)
		tr.Topics = append(tr.Topics, errorsFor(refused, codeTopic)...)
	}}
}

func deniedWriteTxnMarkers(r kmsg.Request) kmsg.Response {
	req := r.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition, rp.ErrorCode = p, codeCluster
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp
}

// configResource names the ACL resource of a config resource (a topic,
// or the cluster for broker configs) and the code refusing it.
func configResource(rt kmsg.ConfigResourceType, name string) (kmsg.ACLResourceType, string, int16) {
	if rt == kmsg.ConfigResourceTypeTopic {
		return acl.Topic, name, codeTopic
	}
	return acl.Cluster, acl.ClusterName, codeCluster
}

// mayConfig reports whether the principal holds op on a config resource.
func (a access) mayConfig(op kmsg.ACLOperation, rt kmsg.ConfigResourceType, name string) bool {
	art, aname, _ := configResource(rt, name)
	return a.may(op, art, aname)
}

// configCode is the code refusing a config resource.
func configCode(rt kmsg.ConfigResourceType, name string) int16 {
	_, _, code := configResource(rt, name)
	return code
}

// DescribeConfigs needs DESCRIBE_CONFIGS on each topic, or on the cluster
// for broker configs.
func authzDescribeConfigs(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.DescribeConfigsRequest)
	return refuseEach(&req.Resources, func(res kmsg.DescribeConfigsRequestResource) bool {
		return a.mayConfig(opDescribeConfigs, res.ResourceType, res.ResourceName)
	}, func(resp kmsg.Response, res kmsg.DescribeConfigsRequestResource) {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ErrorCode = res.ResourceType, res.ResourceName, configCode(res.ResourceType, res.ResourceName)
		dr := resp.(*kmsg.DescribeConfigsResponse)
		dr.Resources = append(dr.Resources, rr)
	})
}

// AlterConfigs needs ALTER_CONFIGS on each resource.
func authzAlterConfigs(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.AlterConfigsRequest)
	return refuseEach(&req.Resources, func(res kmsg.AlterConfigsRequestResource) bool {
		return a.mayConfig(opAlterConfigs, res.ResourceType, res.ResourceName)
	}, func(resp kmsg.Response, res kmsg.AlterConfigsRequestResource) {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ErrorCode = res.ResourceType, res.ResourceName, configCode(res.ResourceType, res.ResourceName)
		ar := resp.(*kmsg.AlterConfigsResponse)
		ar.Resources = append(ar.Resources, rr)
	})
}

// IncrementalAlterConfigs needs ALTER_CONFIGS on each resource.
func authzIncrementalAlterConfigs(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.IncrementalAlterConfigsRequest)
	return refuseEach(&req.Resources, func(res kmsg.IncrementalAlterConfigsRequestResource) bool {
		return a.mayConfig(opAlterConfigs, res.ResourceType, res.ResourceName)
	}, func(resp kmsg.Response, res kmsg.IncrementalAlterConfigsRequestResource) {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ErrorCode = res.ResourceType, res.ResourceName, configCode(res.ResourceType, res.ResourceName)
		ar := resp.(*kmsg.IncrementalAlterConfigsResponse)
		ar.Resources = append(ar.Resources, rr)
	})
}

// CreatePartitions needs ALTER on each topic.
func authzCreatePartitions(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.CreatePartitionsRequest)
	return refuseEach(&req.Topics, func(t kmsg.CreatePartitionsRequestTopic) bool { return a.may(opAlter, acl.Topic, t.Topic) },
		func(resp kmsg.Response, t kmsg.CreatePartitionsRequestTopic) {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic, rt.ErrorCode = t.Topic, codeTopic
			cr := resp.(*kmsg.CreatePartitionsResponse)
			cr.Topics = append(cr.Topics, rt)
		})
}

// DeleteGroups needs DELETE on each group.
func authzDeleteGroups(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.DeleteGroupsRequest)
	return refuseEach(&req.Groups, func(g string) bool { return a.may(opDelete, acl.Group, g) },
		func(resp kmsg.Response, g string) {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, codeGroup
			dr := resp.(*kmsg.DeleteGroupsResponse)
			dr.Groups = append(dr.Groups, rg)
		})
}

// OffsetDelete needs DELETE on the group and READ on each topic.
func authzOffsetDelete(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.OffsetDeleteRequest)
	if !a.may(opDelete, acl.Group, req.Group) {
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = codeGroup
		return verdict{deny: resp}
	}
	refused := split(&req.Topics, func(t kmsg.OffsetDeleteRequestTopic) bool { return a.may(opRead, acl.Topic, t.Topic) })
	if refused == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		dr := resp.(*kmsg.OffsetDeleteResponse)
		for _, t := range refused {
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetDeleteResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codeTopic
				rt.Partitions = append(rt.Partitions, rp)
			}
			dr.Topics = append(dr.Topics, rt)
		}
	}}
}

// DescribeProducers needs READ on each topic.
func authzDescribeProducers(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.DescribeProducersRequest)
	refused := split(&req.Topics, func(t kmsg.DescribeProducersRequestTopic) bool { return a.may(opRead, acl.Topic, t.Topic) })
	if refused == nil {
		return verdict{}
	}
	return verdict{after: func(resp kmsg.Response) {
		dr := resp.(*kmsg.DescribeProducersResponse)
		for _, t := range refused {
			rt := kmsg.NewDescribeProducersResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewDescribeProducersResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, codeTopic
				rt.Partitions = append(rt.Partitions, rp)
			}
			dr.Topics = append(dr.Topics, rt)
		}
	}}
}

// DescribeTransactions needs DESCRIBE on each transactional id.
func authzDescribeTransactions(_ *Broker, a access, r kmsg.Request) verdict {
	req := r.(*kmsg.DescribeTransactionsRequest)
	refused := split(&req.TransactionalIDs, func(id string) bool { return a.may(opDescribe, acl.TransactionalID, id) })
	return verdict{after: func(resp kmsg.Response) {
		dr := resp.(*kmsg.DescribeTransactionsResponse)
		// The topics a transaction writes are shown only if the principal
		// may describe them.
		for i := range dr.TransactionStates {
			split(&dr.TransactionStates[i].Topics, func(t kmsg.DescribeTransactionsResponseTransactionStateTopic) bool {
				return a.may(opDescribe, acl.Topic, t.Topic)
			})
		}
		for _, id := range refused {
			st := kmsg.NewDescribeTransactionsResponseTransactionState()
			st.TransactionalID, st.ErrorCode = id, codeTxnID
			dr.TransactionStates = append(dr.TransactionStates, st)
		}
	}}
}

// ListTransactions lists the transactional ids the principal may
// DESCRIBE.
func authzListTransactions(_ *Broker, a access, _ kmsg.Request) verdict {
	return verdict{after: func(resp kmsg.Response) {
		lr := resp.(*kmsg.ListTransactionsResponse)
		split(&lr.TransactionStates, func(s kmsg.ListTransactionsResponseTransactionState) bool {
			return a.may(opDescribe, acl.TransactionalID, s.TransactionalID)
		})
	}}
}
