package console

import (
	"context"
	"net/http"
	"strconv"

	dto "github.com/prometheus/client_model/go"
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
	Health          []healthRow
}

// healthRow is one of this node's health gauges.
type healthRow struct {
	Name  string // the metric's name
	Value float64
	Help  string
	Bad   bool // nonzero where zero is healthy
}

// healthMetrics are the gauges the cluster page shows, and whether a
// nonzero value is a problem.
var healthMetrics = []struct {
	name string
	bad  bool
}{
	{"weir_active_controller", false},
	{"weir_leader_partitions", false},
	{"weir_under_replicated_partitions", true},
	{"weir_under_min_isr_partitions", true},
	// At min.insync.replicas is a warning for the next lost replica, and
	// every partition of a single node (one replica, min 1) is at it.
	{"weir_at_min_isr_partitions", false},
	{"weir_offline_partitions", true},
	{"weir_open_transactions", false},
	{"weir_oldest_open_transaction_age_seconds", false},
}

// health reads this node's gauges from the broker's collector, the same
// numbers /metrics serves.
func (c *Console) health() []healthRow {
	if c.cfg.Health == nil {
		return nil
	}
	fams, err := c.cfg.Health.Gather()
	if err != nil {
		c.cfg.Logger.Warn("console: gather health", "err", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	var rows []healthRow
	for _, hm := range healthMetrics {
		f := byName[hm.name]
		if f == nil || len(f.GetMetric()) != 1 {
			continue // offline partitions: the active controller's only
		}
		m := f.GetMetric()[0]
		v := m.GetGauge().GetValue()
		if m.GetCounter() != nil {
			v = m.GetCounter().GetValue()
		}
		rows = append(rows, healthRow{Name: hm.name, Value: v, Help: f.GetHelp(), Bad: hm.bad && v != 0})
	}
	return rows
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
	p.Health = c.health()
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
