package broker

// ElectLeaders v0-2 (KIP-183). v0 always elects preferred replicas; v1
// adds the election type (0 PREFERRED, 1 UNCLEAN, KIP-460) and a
// top-level error; v2 is the flexible form. Null topics mean every
// partition, and then partitions that need no election are left out of
// the answer, as in Kafka. The elections are the active controller's
// (controller.ElectLeaders): any other node of a cluster forwards the
// request to it and relays its answer, so a client may ask any broker.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/controller"
)

func (b *Broker) handleElectLeaders(req *kmsg.ElectLeadersRequest) kmsg.Response {
	typ := controller.ElectPreferred
	if req.Version >= 1 {
		typ = controller.ElectionType(req.ElectionType)
	}
	if ctrlID := b.ctrl.ControllerID(); b.ctrl.Clustered() && ctrlID != b.cfg.NodeID {
		if ctrlID < 0 {
			return electFailed(req, kerr.NotController, "the metadata quorum has no leader this node knows of")
		}
		return b.forwardElectLeaders(req, typ, ctrlID)
	}
	var targets []controller.ElectTarget
	if req.Topics != nil {
		targets = []controller.ElectTarget{}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				targets = append(targets, controller.ElectTarget{Topic: t.Topic, Partition: p})
			}
		}
	}
	results, err := b.ctrl.ElectLeaders(typ, targets)
	if err != nil {
		return electFailed(req, kerr.ErrorForCode(errCode(err)).(*kerr.Error), err.Error())
	}
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	byTopic := map[string]int{}
	for _, r := range results {
		i, ok := byTopic[r.Topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[r.Topic] = i
			rt := kmsg.NewElectLeadersResponseTopic()
			rt.Topic = r.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewElectLeadersResponseTopicPartition()
		rp.Partition = r.Partition
		if r.Err != nil {
			rp.ErrorCode = r.Err.Code
			msg := r.Msg
			rp.ErrorMessage = &msg
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	return resp
}

// forwardElectLeaders sends the request to the active controller, ctrlID,
// and answers with its answer, at the version the client asked.
func (b *Broker) forwardElectLeaders(req *kmsg.ElectLeadersRequest, typ controller.ElectionType, ctrlID int32) kmsg.Response {
	fwd := *req
	fwd.ElectionType = int8(typ) // a v0 request asks for preferred elections
	kresp, err := b.peerRequest(b.quit, ctrlID, &fwd)
	if err != nil {
		// The controller is unreachable or has just changed: the client
		// looks for the controller again and retries.
		return electFailed(req, kerr.NotController, "forwarding to the active controller: "+err.Error())
	}
	r := kresp.(*kmsg.ElectLeadersResponse)
	if r.ErrorCode != 0 && len(r.Topics) == 0 {
		code, _ := kerr.ErrorForCode(r.ErrorCode).(*kerr.Error)
		return electFailed(req, code, "the active controller refused the request")
	}
	resp := *r
	resp.Version = req.Version
	return &resp
}

// electFailed answers every partition the request names, and at v1+ the
// request as a whole, with code.
func electFailed(req *kmsg.ElectLeadersRequest, code *kerr.Error, msg string) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	resp.ErrorCode = code.Code
	for _, t := range req.Topics {
		rt := kmsg.NewElectLeadersResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition, rp.ErrorCode, rp.ErrorMessage = p, code.Code, &msg
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
