package broker

// DescribeCluster v0-1 (v1 adds the endpoint type, always brokers here).
// ControllerID is the active controller as this node knows it: itself when
// it runs alone, the metadata quorum's leader in a cluster, -1 when the
// quorum has no leader it knows of. Brokers are this node alone, or in a
// cluster the registered brokers of the image.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/metadata"
)

func (b *Broker) handleDescribeCluster(req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterID = ClusterID
	resp.ControllerID = b.ctrl.ControllerID()
	resp.EndpointType = 1
	if req.EndpointType != 0 && req.EndpointType != 1 {
		resp.ErrorCode = 114 // UNSUPPORTED_ENDPOINT_TYPE
	}
	if !b.ctrl.Clustered() {
		br := kmsg.NewDescribeClusterResponseBroker()
		br.NodeID, br.Host, br.Port = b.cfg.NodeID, b.advHost, b.advPort
		resp.Brokers = []kmsg.DescribeClusterResponseBroker{br}
		return resp
	}
	b.ctrl.View(func(im *metadata.Image) {
		for _, id := range im.BrokerIDs() {
			r := im.Brokers[id]
			br := kmsg.NewDescribeClusterResponseBroker()
			br.NodeID, br.Host, br.Port = r.NodeID, r.Host, r.Port
			resp.Brokers = append(resp.Brokers, br)
		}
	})
	return resp
}
