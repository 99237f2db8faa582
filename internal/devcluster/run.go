package devcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster is a running development cluster: one `weir serve` child
// process per node, each in its own process group so a Ctrl-C at the
// terminal reaches only the parent, which stops them in order.
type Cluster struct {
	Plan  *Plan
	procs []*proc
	lock  *os.File
	// down receives the index of each node whose process ended.
	down chan int
}

type proc struct {
	node Node
	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped
	err  error         // its exit status, set before done closes
}

// Start prepares the directories and starts every node from exe (the weir
// binary) without waiting for them to serve; see WaitReady. On failure
// nothing is left running.
func Start(p *Plan, exe string) (*Cluster, error) {
	if err := p.prepareDir(); err != nil {
		return nil, err
	}
	lock, err := lockDir(p.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Plan: p, lock: lock, down: make(chan int, len(p.Nodes))}
	if err := p.CheckPorts(); err != nil {
		c.unlock()
		return nil, err
	}
	for i, n := range p.Nodes {
		pr, err := c.startNode(i, n, exe)
		if err != nil {
			c.Stop(5*time.Second, nil)
			return nil, err
		}
		c.procs = append(c.procs, pr)
	}
	return c, nil
}

func (c *Cluster) startNode(i int, n Node, exe string) (*proc, error) {
	logFile, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	fmt.Fprintf(logFile, "--- weir cluster up: node %d starting at %s ---\n", n.ID, time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(exe, "serve",
		"--node-id", strconv.Itoa(int(n.ID)), "--listen", n.Addr, "--data", n.DataDir,
		"--controller-listen", n.ControllerAddr, "--voters", c.Plan.Voters)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %d: %w", n.ID, err)
	}
	pr := &proc{node: n, cmd: cmd, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
		c.down <- i
	}()
	return pr, nil
}

// PIDs are the node processes' ids, in node order.
func (c *Cluster) PIDs() []int {
	pids := make([]int, len(c.procs))
	for i, pr := range c.procs {
		pids[i] = pr.cmd.Process.Pid
	}
	return pids
}

// Down receives the index of each node whose process ended, once.
func (c *Cluster) Down() <-chan int { return c.down }

// Exited describes how node i's process ended, with the end of its log;
// "" while it runs.
func (c *Cluster) Exited(i int) string {
	pr := c.procs[i]
	select {
	case <-pr.done:
	default:
		return ""
	}
	return fmt.Sprintf("node %d exited (%v); the end of %s:\n%s", pr.node.ID, pr.err, pr.node.LogPath, logTail(pr.node.LogPath, 15))
}

// Running counts the node processes still running.
func (c *Cluster) Running() int {
	n := 0
	for _, pr := range c.procs {
		select {
		case <-pr.done:
		default:
			n++
		}
	}
	return n
}

// pollInterval is how often WaitReady asks the nodes again.
const pollInterval = 100 * time.Millisecond

// WaitReady waits until every node names the same active controller and
// lists every node as a registered broker, and returns the controller's
// id. It fails as soon as a node's process ends, or when ctx is done.
func (c *Cluster) WaitReady(ctx context.Context) (int32, error) {
	clients := make([]*kgo.Client, len(c.procs))
	for i, pr := range c.procs {
		cl, err := kgo.NewClient(kgo.SeedBrokers(pr.node.Addr), kgo.RequestRetries(0), kgo.DialTimeout(time.Second))
		if err != nil {
			return -1, err
		}
		clients[i] = cl
		defer cl.Close()
	}
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	last := "no node answered yet"
	for {
		for i := range c.procs {
			if msg := c.Exited(i); msg != "" {
				return -1, errors.New(msg)
			}
		}
		ctrl, why := c.agreed(ctx, clients)
		if why == "" {
			return ctrl, nil
		}
		last = why
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("the cluster is not ready: %s (%w); the nodes' logs are %s/node*/weir.log", last, context.Cause(ctx), c.Plan.Dir)
		case <-ticker.C:
		}
	}
}

// agreed asks every node for its metadata; it returns the controller they
// all name, or why they are not ready.
func (c *Cluster) agreed(ctx context.Context, clients []*kgo.Client) (int32, string) {
	ctrl := int32(-1)
	for i, cl := range clients {
		id := c.procs[i].node.ID
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := req.RequestWith(rctx, cl.SeedBrokers()[0])
		cancel()
		switch {
		case err != nil:
			return -1, fmt.Sprintf("node %d does not answer: %v", id, err)
		case resp.ControllerID < 0:
			return -1, fmt.Sprintf("node %d knows no active controller", id)
		case i > 0 && resp.ControllerID != ctrl:
			return -1, fmt.Sprintf("nodes disagree on the controller (%d, %d)", ctrl, resp.ControllerID)
		case len(resp.Brokers) != len(clients):
			return -1, fmt.Sprintf("node %d lists %d of %d brokers", id, len(resp.Brokers), len(clients))
		}
		ctrl = resp.ControllerID
	}
	return ctrl, ""
}

// Stop sends every node SIGTERM, a clean shutdown, waits up to timeout
// for all of them, or until hurry is closed, then sends SIGKILL to those
// left, and waits until every process is reaped. It returns the ids of
// the nodes that had to be killed.
func (c *Cluster) Stop(timeout time.Duration, hurry <-chan struct{}) []int32 {
	defer c.unlock()
	for _, pr := range c.procs {
		_ = pr.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	late := false
	var killed []int32
	for _, pr := range c.procs {
		if !late {
			select {
			case <-pr.done:
				continue
			case <-deadline.C:
				late = true
			case <-hurry:
				late = true
			}
		}
		select {
		case <-pr.done:
		default:
			_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL) // its process group: the node alone
			killed = append(killed, pr.node.ID)
			<-pr.done
		}
	}
	return killed
}

func (c *Cluster) unlock() {
	if c.lock != nil {
		c.lock.Close() // releases the lock
		c.lock = nil
	}
}

// logTail is the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.ReplaceAll(string(bytes.Join(lines, []byte("\n"))), "\n", "\n  ")
}
