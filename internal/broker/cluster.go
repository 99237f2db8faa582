package broker

// DescribeCluster v0-2 (v1 adds the endpoint type, always brokers here;
// v2 may ask for fenced brokers too, each flagged, KIP-1073).
// ControllerID is the active controller as this node knows it: itself when
// it runs alone, the metadata quorum's leader in a cluster, -1 when the
// quorum has no leader it knows of. Brokers are this node alone, or in a
// cluster the registered, unfenced brokers of the image (and the fenced
// ones when asked).
//
// The answer also carries, in tagged field uncleanElectionsTag, the
// number of unclean leader elections the cluster has committed. Kafka has
// no such field (it counts them in a controller metric); a client that
// does not know the tag ignores it. The count is the metadata image's,
// derived from the records every node applies, so any broker answers
// with the same number once it has applied the same metadata.

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/server"
)

// uncleanElectionsTag is the tagged field of a DescribeCluster response
// that holds the count of unclean leader elections, a varint; `weir
// cluster describe` reads it.
const uncleanElectionsTag = 10001

func (b *Broker) handleDescribeCluster(c *server.Conn, req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterID = b.clusterID
	resp.ControllerID = b.ctrl.ControllerID()
	resp.EndpointType = 1
	if req.EndpointType != 0 && req.EndpointType != 1 {
		resp.ErrorCode = 114 // UNSUPPORTED_ENDPOINT_TYPE
	}
	if !b.ctrl.Clustered() {
		if host, port, ok := b.self().Endpoint(c.Listener); ok {
			br := kmsg.NewDescribeClusterResponseBroker()
			br.NodeID, br.Host, br.Port = b.cfg.NodeID, host, port
			resp.Brokers = []kmsg.DescribeClusterResponseBroker{br}
		}
		return resp
	}
	b.ctrl.View(func(im *metadata.Image) {
		for _, id := range im.BrokerIDs() {
			r := im.Brokers[id]
			if r.Fenced && !req.IncludeFencedBrokers {
				continue
			}
			host, port, ok := r.Endpoint(c.Listener)
			if !ok {
				continue
			}
			br := kmsg.NewDescribeClusterResponseBroker()
			br.NodeID, br.Host, br.Port, br.IsFenced = r.NodeID, host, port, r.Fenced
			resp.Brokers = append(resp.Brokers, br)
		}
		resp.UnknownTags.Set(uncleanElectionsTag, binary.AppendVarint(nil, im.UncleanElections))
	})
	return resp
}
