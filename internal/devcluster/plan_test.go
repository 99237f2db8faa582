package devcluster

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestPlanLaysOutPortsAndDirectoriesPerNode(t *testing.T) {
	p, err := NewPlan(Options{Nodes: 3, Dir: "wc", BasePort: 9092})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Bootstrap(), "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"; got != want {
		t.Errorf("bootstrap %q, want %q", got, want)
	}
	if got, want := p.Voters, "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"; got != want {
		t.Errorf("voters %q, want %q", got, want)
	}
	n := p.Nodes[1]
	if n.ID != 2 || n.DataDir != filepath.Join("wc", "node2", "data") || n.LogPath != filepath.Join("wc", "node2", "weir.log") {
		t.Errorf("node 2: %+v", n)
	}
	p, err = NewPlan(Options{Nodes: 2, Dir: "wc", BasePort: 19092, ControllerBasePort: 29092, Host: "localhost"})
	if err != nil || p.Voters != "1@localhost:29092,2@localhost:29093" {
		t.Errorf("explicit controller ports: %v, %+v", err, p)
	}
}

func TestPlanRefusesWhatCannotRun(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Nodes: 0, Dir: "d", BasePort: 9092}, "1 to 9 nodes, not 0"},
		{Options{Nodes: 10, Dir: "d", BasePort: 9092}, "1 to 9 nodes, not 10"},
		{Options{Nodes: 1, BasePort: 9092}, "--dir"},
		{Options{Nodes: 3, Dir: "d", BasePort: -1}, "--base-port -1"},
		{Options{Nodes: 3, Dir: "d", BasePort: 65440}, "--base-port+100"},
		{Options{Nodes: 3, Dir: "d", BasePort: 9092, ControllerBasePort: 9090}, "overlap"},
		{Options{Nodes: 3, Dir: "d", BasePort: 9092, ControllerBasePort: 65534}, "--controller-base-port 65534"},
		{Options{Nodes: 3, Dir: "d", BasePort: 9092, Host: "0.0.0.0"}, "not a wildcard"},
	} {
		if _, err := NewPlan(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want an error saying %q", tc.o, err, tc.want)
		}
	}
}
