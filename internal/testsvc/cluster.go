package testsvc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cluster is `weir serve` processes forming one Weir cluster on
// loopback: the voters of the metadata quorum, and any broker-only nodes
// (learners, whose ids follow the voters'). Each node keeps
// its ports and data directory across restarts, so a test can kill one
// with SIGKILL and start it again.
type Cluster struct {
	Nodes []*Node

	bin    string
	voters string
	extra  []string
	// net is the bridge and namespaces the nodes run in, if they do
	// (StartClusterInNamespaces).
	net *network
}

// Node is one process of a Cluster.
type Node struct {
	ID int32
	// Addr is the Kafka listener (host:port); ControllerAddr the
	// metadata quorum's.
	Addr, ControllerAddr string
	// AdminAddr is the admin listener: /metrics, /healthz, /readyz.
	AdminAddr string
	// SparePort is a further free port, for a second Kafka listener: the
	// cluster's extra arguments may name it as {spare_port}, and the
	// node's Kafka address as {addr}.
	SparePort int
	DataDir   string
	// LogPath collects the process's standard error across restarts.
	LogPath string
	// BrokerOnly says the node is not among the voters.
	BrokerOnly bool

	netns  string // the network namespace the node runs in, if any
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartCluster starts n nodes from the weir binary bin (see Build), with
// their data directories and logs under dir, and waits until each
// listens. extra are added to every node's `weir serve` arguments, with
// {addr} and {spare_port} replaced by the node's (see Node.SparePort).
func StartCluster(bin, dir string, n int, extra ...string) (*Cluster, error) {
	return StartClusterWithBrokers(bin, dir, n, 0, extra...)
}

// StartClusterWithBrokers is StartCluster with, besides the n voters,
// brokersOnly nodes outside the voters (ids n+1 to n+brokersOnly), each
// with its own controller listener.
func StartClusterWithBrokers(bin, dir string, n, brokersOnly int, extra ...string) (*Cluster, error) {
	// A port found free may be taken by another process before the node
	// binds it (tests of other packages pick ports at the same time):
	// start again on new ports, in new directories.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var c *Cluster
		sub := dir
		if attempt > 0 {
			sub = filepath.Join(dir, fmt.Sprintf("retry-%d", attempt))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return nil, err
			}
		}
		c, err = startClusterOnce(bin, sub, n, brokersOnly, extra...)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			return c, err
		}
	}
	return nil, err
}

// startClusterOnce is one attempt of StartClusterWithBrokers.
func startClusterOnce(bin, dir string, n, brokersOnly int, extra ...string) (*Cluster, error) {
	c := &Cluster{bin: bin, extra: extra}
	var voters []string
	const perNode = 4
	ports, err := freePorts(perNode * (n + brokersOnly))
	if err != nil {
		return nil, err
	}
	for i := 1; i <= n+brokersOnly; i++ {
		kp, cp, ap, sp := ports[perNode*(i-1)], ports[perNode*(i-1)+1], ports[perNode*(i-1)+2], ports[perNode*(i-1)+3]
		nd := &Node{
			ID:             int32(i),
			Addr:           "127.0.0.1:" + strconv.Itoa(kp),
			ControllerAddr: "127.0.0.1:" + strconv.Itoa(cp),
			AdminAddr:      "127.0.0.1:" + strconv.Itoa(ap),
			SparePort:      sp,
			DataDir:        filepath.Join(dir, fmt.Sprintf("node-%d", i)),
			LogPath:        filepath.Join(dir, fmt.Sprintf("node-%d.log", i)),
			BrokerOnly:     i > n,
		}
		c.Nodes = append(c.Nodes, nd)
		if !nd.BrokerOnly {
			voters = append(voters, fmt.Sprintf("%d@%s", i, nd.ControllerAddr))
		}
	}
	c.voters = strings.Join(voters, ",")
	for i := range c.Nodes {
		if err := c.Start(i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// Voters is the cluster's controller.quorum.voters.
func (c *Cluster) Voters() string { return c.voters }

// Running reports whether node i's process is alive.
func (c *Cluster) Running(i int) bool {
	nd := c.Nodes[i]
	if nd.exited == nil {
		return false
	}
	select {
	case <-nd.exited:
		return false
	default:
		return true
	}
}

// Start starts node i (again) and waits until it listens.
func (c *Cluster) Start(i int) error {
	nd := c.Nodes[i]
	if c.Running(i) {
		return fmt.Errorf("node %d is already running", nd.ID)
	}
	logFile, err := os.OpenFile(nd.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"serve",
		"--node-id", strconv.Itoa(int(nd.ID)), "--listen", nd.Addr, "--data", nd.DataDir,
		"--controller-listen", nd.ControllerAddr, "--voters", c.voters, "--log-level", "info",
		"--admin-listen", nd.AdminAddr,
	}
	perNode := strings.NewReplacer("{addr}", nd.Addr, "{spare_port}", strconv.Itoa(nd.SparePort))
	for _, a := range c.extra {
		args = append(args, perNode.Replace(a))
	}
	cmd := exec.Command(c.bin, args...)
	if nd.netns != "" {
		// ip netns exec enters the namespace and execs the binary, so
		// the process (and its group) is the node itself.
		cmd = exec.Command("ip", append([]string{"netns", "exec", nd.netns, c.bin}, args...)...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start node %d: %w", nd.ID, err)
	}
	nd.cmd, nd.exited = cmd, make(chan struct{})
	exited := nd.exited
	go func() {
		cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	if err := waitListening(nd.Addr, exited, 30*time.Second); err != nil {
		c.Kill(i)
		return fmt.Errorf("node %d: %w; its log:\n%s", nd.ID, err, c.Log(i))
	}
	return nil
}

// Kill sends node i SIGKILL and waits until it is gone.
func (c *Cluster) Kill(i int) {
	nd := c.Nodes[i]
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-nd.cmd.Process.Pid, syscall.SIGKILL)
	<-nd.exited
}

// Terminate sends node i SIGTERM, a clean shutdown, and waits until it is
// gone (SIGKILL after 10s).
func (c *Cluster) Terminate(i int) {
	nd := c.Nodes[i]
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	stopProcess(nd.cmd, nd.exited, syscall.SIGTERM)
}

// Pause freezes node i with SIGSTOP: it keeps its sockets and state
// but does nothing until Resume, as a process stalled by a long GC pause
// or a hung disk.
func (c *Cluster) Pause(i int) error {
	return c.signal(i, syscall.SIGSTOP)
}

// Resume lets node i run again after Pause (SIGCONT).
func (c *Cluster) Resume(i int) error {
	return c.signal(i, syscall.SIGCONT)
}

func (c *Cluster) signal(i int, sig syscall.Signal) error {
	nd := c.Nodes[i]
	if !c.Running(i) {
		return fmt.Errorf("node %d is not running", nd.ID)
	}
	return syscall.Kill(-nd.cmd.Process.Pid, sig)
}

// Stop kills every node, and removes the network namespaces they ran in,
// if any.
func (c *Cluster) Stop() {
	for i := range c.Nodes {
		c.Kill(i)
	}
	if c.net != nil {
		c.net.remove()
		c.net = nil
	}
}

// Log returns what node i wrote to standard error so far.
func (c *Cluster) Log(i int) string {
	b, err := os.ReadFile(c.Nodes[i].LogPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err.Error()
	}
	return string(b)
}
