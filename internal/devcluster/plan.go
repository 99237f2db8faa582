// Package devcluster runs a local development cluster: N `weir serve`
// processes on one machine, every node a broker and a voter of the
// metadata quorum, as `weir cluster up N` does. It starts the processes,
// waits until the cluster has a controller and every broker is
// registered, and stops them all on request.
package devcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MaxNodes bounds the nodes of a development cluster: every node is a
// voter, and a quorum of more than a handful only slows commits down.
const MaxNodes = 9

// DefaultControllerPortOffset is how far above the Kafka listeners the
// controller listeners start when no controller base port is given: node
// K listens on BasePort+K-1 for Kafka clients and on BasePort+100+K-1 for
// the metadata quorum.
const DefaultControllerPortOffset = 100

// Options describe a development cluster.
type Options struct {
	// Nodes is how many nodes to run, 1 to MaxNodes.
	Nodes int
	// Dir holds nodeK/data and nodeK/weir.log for each node.
	Dir string
	// Host is the address every listener binds and advertises.
	Host string
	// BasePort is node 1's Kafka listener; node K's is BasePort+K-1.
	BasePort int
	// ControllerBasePort is node 1's controller listener; 0 means
	// BasePort+DefaultControllerPortOffset.
	ControllerBasePort int
}

// Node is one planned node.
type Node struct {
	ID             int32
	Addr           string // Kafka listener, host:port
	ControllerAddr string // metadata quorum listener, host:port
	DataDir        string
	LogPath        string
}

// Plan is a checked set of Options: the nodes with their ports and
// directories.
type Plan struct {
	Options
	Nodes  []Node
	Voters string // controller.quorum.voters
}

// Bootstrap is the comma-separated list of every node's Kafka listener.
func (p *Plan) Bootstrap() string {
	addrs := make([]string, len(p.Nodes))
	for i, n := range p.Nodes {
		addrs[i] = n.Addr
	}
	return strings.Join(addrs, ",")
}

// NewPlan checks o and lays out the nodes. It does not touch the disk or
// the network.
func NewPlan(o Options) (*Plan, error) {
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		return nil, fmt.Errorf("a development cluster has 1 to %d nodes, not %d", MaxNodes, o.Nodes)
	}
	if o.Dir == "" {
		return nil, errors.New("no directory given for the cluster's data (--dir)")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if ip := net.ParseIP(o.Host); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("--host %s: nodes advertise this address to clients and to each other, so it must be one they can reach, not a wildcard", o.Host)
	}
	ctrlFlag := "--controller-base-port"
	if o.ControllerBasePort == 0 {
		o.ControllerBasePort = o.BasePort + DefaultControllerPortOffset
		ctrlFlag = fmt.Sprintf("the controller base port (--base-port+%d)", DefaultControllerPortOffset)
	}
	for _, r := range []struct {
		flag string
		base int
	}{{"--base-port", o.BasePort}, {ctrlFlag, o.ControllerBasePort}} {
		if r.base < 1 || r.base+o.Nodes-1 > 65535 {
			return nil, fmt.Errorf("%s %d: the nodes' ports %d-%d must lie within 1-65535", r.flag, r.base, r.base, r.base+o.Nodes-1)
		}
	}
	if o.BasePort < o.ControllerBasePort+o.Nodes && o.ControllerBasePort < o.BasePort+o.Nodes {
		return nil, fmt.Errorf("the Kafka ports %d-%d and the controller ports %d-%d overlap: choose --controller-base-port apart from --base-port",
			o.BasePort, o.BasePort+o.Nodes-1, o.ControllerBasePort, o.ControllerBasePort+o.Nodes-1)
	}
	p := &Plan{Options: o}
	var voters []string
	for k := 1; k <= o.Nodes; k++ {
		dir := filepath.Join(o.Dir, "node"+strconv.Itoa(k))
		n := Node{
			ID:             int32(k),
			Addr:           net.JoinHostPort(o.Host, strconv.Itoa(o.BasePort+k-1)),
			ControllerAddr: net.JoinHostPort(o.Host, strconv.Itoa(o.ControllerBasePort+k-1)),
			DataDir:        filepath.Join(dir, "data"),
			LogPath:        filepath.Join(dir, "weir.log"),
		}
		p.Nodes = append(p.Nodes, n)
		voters = append(voters, fmt.Sprintf("%d@%s", k, n.ControllerAddr))
	}
	p.Voters = strings.Join(voters, ",")
	return p, nil
}

// CheckPorts fails, naming the port and its use, if any listener of the
// plan cannot be bound now.
func (p *Plan) CheckPorts() error {
	for _, n := range p.Nodes {
		for _, l := range []struct{ what, addr string }{
			{"Kafka listener", n.Addr}, {"controller listener", n.ControllerAddr},
		} {
			ln, err := net.Listen("tcp", l.addr)
			if err != nil {
				return fmt.Errorf("node %d's %s %s cannot be bound (%v): is a cluster already running? choose other ports with --base-port", n.ID, l.what, l.addr, unwrapSyscall(err))
			}
			ln.Close()
		}
	}
	return nil
}

func unwrapSyscall(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

// stateFile records, in Dir, how many nodes the cluster has: its metadata
// was written by a quorum of exactly those voters, which cannot change.
const stateFile = "cluster.json"

type state struct {
	Nodes int `json:"nodes"`
}

// prepareDir creates the directories and checks that data left by an
// earlier run belongs to a cluster of the same size.
func (p *Plan) prepareDir() error {
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", p.Dir, err)
	}
	path := filepath.Join(p.Dir, stateFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var s state
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if s.Nodes != p.Options.Nodes {
			return fmt.Errorf("%s holds a cluster of %d nodes; its quorum cannot change size: run `weir cluster up %d`, or remove %s to start over with %d",
				p.Dir, s.Nodes, s.Nodes, p.Dir, p.Options.Nodes)
		}
	case errors.Is(err, os.ErrNotExist):
		b, _ := json.Marshal(state{Nodes: p.Options.Nodes})
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return err
		}
	default:
		return err
	}
	for _, n := range p.Nodes {
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", n.DataDir, err)
		}
	}
	return nil
}
