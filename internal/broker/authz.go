package broker

// Enforcement of ACLs, when authorizer.class.name turns it on: every
// request is checked here, before its handler, as Kafka checks it (the
// rules below, per API). A request is either refused whole, with the
// API's own *_AUTHORIZATION_FAILED code, or the resources it may not touch
// are taken out of it, the handler serves the rest, and the refused ones
// are put back into the answer with their error (a produce to two topics,
// one of them forbidden, writes to the other). An API without a rule is
// refused by closing the connection: enforcement fails closed, and a test
// checks that every served API has a rule.

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/acl"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/server"
)

// access is one request's principal and host against the authorizer.
type access struct {
	az        *acl.Authorizer
	principal string
	host      string
}

func (a access) may(op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	return a.az.Allowed(a.principal, a.host, op, rt, name)
}

func (a access) cluster(op kmsg.ACLOperation) bool { return a.may(op, acl.Cluster, acl.ClusterName) }

// Operations, shortened.
const (
	opRead            = kmsg.ACLOperationRead
	opWrite           = kmsg.ACLOperationWrite
	opCreate          = kmsg.ACLOperationCreate
	opDelete          = kmsg.ACLOperationDelete
	opAlter           = kmsg.ACLOperationAlter
	opDescribe        = kmsg.ACLOperationDescribe
	opClusterAction   = kmsg.ACLOperationClusterAction
	opDescribeConfigs = kmsg.ACLOperationDescribeConfigs
	opAlterConfigs    = kmsg.ACLOperationAlterConfigs
	opIdempotentWrite = kmsg.ACLOperationIdempotentWrite
)

// verdict is what a rule decides: refuse the whole request with deny, or
// serve it (perhaps with resources taken out) and let after put the
// refused resources into the answer.
type verdict struct {
	deny  kmsg.Response
	after func(kmsg.Response)
}

// rule checks one API's requests; it may take refused resources out of
// req.
type rule func(b *Broker, a access, req kmsg.Request) verdict

// authorize applies req's rule. ok is false when the request is refused;
// then reply answers it.
func (b *Broker) authorize(az *acl.Authorizer, c *server.Conn, req kmsg.Request) (after func(kmsg.Response), reply server.Reply, ok bool) {
	r, known := rules[req.Key()]
	if !known {
		err := fmt.Errorf("%s has no authorization rule: refused", kmsg.NameForKey(req.Key()))
		return nil, func() (kmsg.Response, error) { return nil, err }, false
	}
	a := access{az: az, principal: c.Principal, host: acl.CanonicalHost(hostOf(c.Remote))}
	v := r(b, a, req)
	if v.deny != nil {
		return nil, func() (kmsg.Response, error) { return v.deny, nil }, false
	}
	return v.after, nil, true
}

func hostOf(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(addr.String()); err == nil {
		return h
	}
	return addr.String()
}

// withAfter runs after on the answer reply gives.
func withAfter(reply server.Reply, after func(kmsg.Response)) server.Reply {
	if after == nil {
		return reply
	}
	return func() (kmsg.Response, error) {
		resp, err := reply()
		if err == nil && resp != nil {
			after(server.Unwrap(resp))
		}
		return resp, err
	}
}

// always allows: what any connected client may send.
func always(*Broker, access, kmsg.Request) verdict { return verdict{} }

// clusterOp refuses the request unless the principal holds op on the
// cluster; deny builds the refusal.
func clusterOp(op kmsg.ACLOperation, deny func(req kmsg.Request) kmsg.Response) rule {
	return func(_ *Broker, a access, req kmsg.Request) verdict {
		if a.cluster(op) {
			return verdict{}
		}
		return verdict{deny: deny(req)}
	}
}

var (
	codeTopic   = kerr.TopicAuthorizationFailed.Code
	codeGroup   = kerr.GroupAuthorizationFailed.Code
	codeTxnID   = kerr.TransactionalIDAuthorizationFailed.Code
	codeCluster = kerr.ClusterAuthorizationFailed.Code
)

// rules are the checks of every served API but the ones a connection
// makes before it has a principal (ApiVersions, SASL), which are always
// allowed.
var rules = map[int16]rule{}

func init() {
	for k, r := range map[int16]rule{
		0:  authzProduce,
		1:  authzFetch,
		2:  authzListOffsets,
		3:  authzMetadata,
		8:  authzOffsetCommit,
		9:  authzOffsetFetch,
		10: authzFindCoordinator,
		11: groupRule(func(r kmsg.Request) string { return r.(*kmsg.JoinGroupRequest).Group }, opRead),
		12: groupRule(func(r kmsg.Request) string { return r.(*kmsg.HeartbeatRequest).Group }, opRead),
		13: groupRule(func(r kmsg.Request) string { return r.(*kmsg.LeaveGroupRequest).Group }, opRead),
		14: groupRule(func(r kmsg.Request) string { return r.(*kmsg.SyncGroupRequest).Group }, opRead),
		15: authzDescribeGroups,
		16: authzListGroups,
		17: always,
		18: always,
		19: authzCreateTopics,
		20: authzDeleteTopics,
		21: authzDeleteRecords,
		22: authzInitProducerID,
		23: authzOffsetForLeaderEpoch,
		24: authzAddPartitionsToTxn,
		25: authzAddOffsetsToTxn,
		26: txnRule(func(r kmsg.Request) string { return r.(*kmsg.EndTxnRequest).TransactionalID }),
		27: clusterOp(opClusterAction, deniedWriteTxnMarkers),
		28: authzTxnOffsetCommit,
		29: clusterOp(opDescribe, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.DescribeACLsResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		30: clusterOp(opAlter, func(r kmsg.Request) kmsg.Response {
			req := r.(*kmsg.CreateACLsRequest)
			resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
			for range req.Creations {
				x := kmsg.NewCreateACLsResponseResult()
				x.ErrorCode = codeCluster
				resp.Results = append(resp.Results, x)
			}
			return resp
		}),
		31: clusterOp(opAlter, func(r kmsg.Request) kmsg.Response {
			req := r.(*kmsg.DeleteACLsRequest)
			resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
			for range req.Filters {
				x := kmsg.NewDeleteACLsResponseResult()
				x.ErrorCode = codeCluster
				resp.Results = append(resp.Results, x)
			}
			return resp
		}),
		32: authzDescribeConfigs,
		33: authzAlterConfigs,
		36: always,
		35: clusterOp(opDescribe, func(r kmsg.Request) kmsg.Response {
			// Kafka answers no directories, and from v3 the error.
			resp := r.ResponseKind().(*kmsg.DescribeLogDirsResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		37: authzCreatePartitions,
		42: authzDeleteGroups,
		43: clusterOp(opAlter, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.ElectLeadersResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		44: authzIncrementalAlterConfigs,
		45: clusterOp(opAlter, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		46: clusterOp(opDescribe, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		47: authzOffsetDelete,
		48: clusterOp(opDescribeConfigs, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		49: clusterOp(opAlterConfigs, func(r kmsg.Request) kmsg.Response {
			req := r.(*kmsg.AlterClientQuotasRequest)
			resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
			for _, e := range req.Entries {
				x := kmsg.NewAlterClientQuotasResponseEntry()
				for _, p := range e.Entity {
					xe := kmsg.NewAlterClientQuotasResponseEntryEntity()
					xe.Type, xe.Name = p.Type, p.Name
					x.Entity = append(x.Entity, xe)
				}
				x.ErrorCode = codeCluster
				resp.Entries = append(resp.Entries, x)
			}
			return resp
		}),
		50: clusterOp(opDescribe, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		51: clusterOp(opAlter, func(r kmsg.Request) kmsg.Response {
			req := r.(*kmsg.AlterUserSCRAMCredentialsRequest)
			resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
			seen := make(map[string]bool)
			add := func(user string) {
				if !seen[user] {
					seen[user] = true
					x := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
					x.User, x.ErrorCode = user, codeCluster
					resp.Results = append(resp.Results, x)
				}
			}
			for _, d := range req.Deletions {
				add(d.Name)
			}
			for _, u := range req.Upsertions {
				add(u.Name)
			}
			return resp
		}),
		55: clusterOp(opDescribe, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.DescribeQuorumResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		56: clusterOp(opClusterAction, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.AlterPartitionResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		60: always, // Kafka answers DescribeCluster to anyone (only the authorized operations need DESCRIBE)
		61: authzDescribeProducers,
		63: clusterOp(opClusterAction, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.BrokerHeartbeatResponse)
			resp.ErrorCode = codeCluster
			return resp
		}),
		65: authzDescribeTransactions,
		66: authzListTransactions,
		68: groupRule(func(r kmsg.Request) string { return r.(*kmsg.ConsumerGroupHeartbeatRequest).Group }, opRead),
		69: authzConsumerGroupDescribe,
	} {
		rules[k] = r
	}
}

// groupRule refuses a request about one group unless the principal holds
// op on it; the answer's top-level error says why.
func groupRule(group func(kmsg.Request) string, op kmsg.ACLOperation) rule {
	return func(_ *Broker, a access, req kmsg.Request) verdict {
		if a.may(op, acl.Group, group(req)) {
			return verdict{}
		}
		resp := req.ResponseKind()
		switch r := resp.(type) {
		case *kmsg.JoinGroupResponse:
			r.ErrorCode = codeGroup
		case *kmsg.HeartbeatResponse:
			r.ErrorCode = codeGroup
		case *kmsg.LeaveGroupResponse:
			r.ErrorCode = codeGroup
		case *kmsg.SyncGroupResponse:
			r.ErrorCode = codeGroup
		case *kmsg.ConsumerGroupHeartbeatResponse:
			r.ErrorCode = codeGroup
		}
		return verdict{deny: resp}
	}
}

// txnRule refuses a request of one transactional id unless the principal
// may WRITE it.
func txnRule(id func(kmsg.Request) string) rule {
	return func(_ *Broker, a access, req kmsg.Request) verdict {
		if a.may(opWrite, acl.TransactionalID, id(req)) {
			return verdict{}
		}
		resp := req.ResponseKind()
		if r, ok := resp.(*kmsg.EndTxnResponse); ok {
			r.ErrorCode = codeTxnID
		}
		return verdict{deny: resp}
	}
}

// imageTopicName resolves a topic named by id (Fetch v13+, Metadata
// v10+, DeleteTopics v6+) in the metadata image, which knows every
// topic of the cluster.
func (b *Broker) imageTopicName(id [16]byte) (string, bool) {
	var name string
	var ok bool
	b.ctrl.View(func(im *metadata.Image) {
		if t, found := im.TopicByID(metadata.TopicID(id)); found {
			name, ok = t.Name, true
		}
	})
	return name, ok
}
