package console

import (
	"context"
	"net/http"
	"strconv"
)

// clusterPage is the cluster: its nodes, controller and health.
type clusterPage struct {
	ClusterID       string
	Controller      int32
	Nodes           []nodeRow
	Ready           bool
	NotReady        string
	Topics          int
	Partitions      int
	Offline         int
	UnderReplicated int
}

type nodeRow struct {
	ID         int32
	Addr       string
	Rack       string
	Controller bool
	This       bool
}

func (c *Console) cluster(ctx context.Context, s *session, _ *http.Request) (view, error) {
	md, err := s.adm.Metadata(ctx)
	if err != nil {
		return view{}, err
	}
	p := clusterPage{ClusterID: md.Cluster, Controller: md.Controller, Topics: len(md.Topics)}
	p.Ready, p.NotReady = c.cfg.Node.Ready()
	for _, b := range md.Brokers {
		row := nodeRow{ID: b.NodeID, Addr: b.Host + ":" + strconv.Itoa(int(b.Port)), Controller: b.NodeID == md.Controller, This: b.NodeID == c.cfg.NodeID}
		if b.Rack != nil {
			row.Rack = *b.Rack
		}
		p.Nodes = append(p.Nodes, row)
	}
	for _, t := range md.Topics {
		for _, part := range t.Partitions {
			p.Partitions++
			switch {
			case part.Leader < 0:
				p.Offline++
			case len(part.ISR) < len(part.Replicas):
				p.UnderReplicated++
			}
		}
	}
	return view{name: "cluster", title: "Cluster", data: p}, nil
}
