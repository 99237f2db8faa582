package testsvc

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// A cluster whose nodes each run in their own network namespace, joined
// to the test's namespace by a veth pair on one bridge. The test reaches
// every node over the bridge, as a client would; a network partition is
// a blackhole route in the namespaces on either side of a cut, so the
// kernel drops what the two nodes send each other — the Raft quorum
// transport, replica fetches, heartbeats, every peer request — while
// traffic between the test and each node flows as before.

// ErrNoNamespaces is returned by StartClusterInNamespaces when this
// process cannot make network namespaces (it is not root, or there is no
// ip command).
var ErrNoNamespaces = errors.New("network namespaces need root and the ip command (iproute2)")

// netnsSeq numbers the namespaces this process makes, so that clusters
// started by one test binary, and by several at once, never share a name.
var netnsSeq atomic.Uint32

// netnsLock serialises choosing a subnet among concurrent test binaries.
const netnsLock = "/tmp/weir-testsvc-netns.lock"

// nsKafkaPort and nsControllerPort are each node's listeners inside its
// own namespace; every namespace has its own ports, so they are fixed.
const (
	nsKafkaPort      = 9092
	nsControllerPort = 9093
)

// network is the bridge and namespaces of a namespaced cluster.
type network struct {
	bridge     string
	namespaces []string // one per node, in node order
	ips        []string
}

// StartClusterInNamespaces is StartCluster with each node in its own
// network namespace, so that Cut, Isolate and Heal can partition the
// network between nodes. It returns ErrNoNamespaces when namespaces
// cannot be made here.
func StartClusterInNamespaces(bin, dir string, n int, extra ...string) (*Cluster, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNoNamespaces
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, ErrNoNamespaces
	}
	nw, err := makeNetwork(n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, extra: extra, net: nw}
	var voters []string
	for i := 1; i <= n; i++ {
		ip := nw.ips[i-1]
		nd := &Node{
			ID:             int32(i),
			Addr:           net.JoinHostPort(ip, strconv.Itoa(nsKafkaPort)),
			ControllerAddr: net.JoinHostPort(ip, strconv.Itoa(nsControllerPort)),
			DataDir:        fmt.Sprintf("%s/node-%d", dir, i),
			LogPath:        fmt.Sprintf("%s/node-%d.log", dir, i),
			netns:          nw.namespaces[i-1],
		}
		c.Nodes = append(c.Nodes, nd)
		voters = append(voters, fmt.Sprintf("%d@%s", i, nd.ControllerAddr))
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

// makeNetwork makes a bridge in this namespace and n namespaces linked to
// it, each with one address on a /24 no interface here uses yet.
func makeNetwork(n int) (_ *network, err error) {
	lock, err := os.OpenFile(netnsLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	prefix, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	// Interface names are at most 15 bytes.
	tag := fmt.Sprintf("%d%c", os.Getpid()%100000, 'a'+rune(netnsSeq.Add(1)%26))
	nw := &network{bridge: "wbr" + tag}
	defer func() {
		if err != nil {
			nw.remove()
		}
	}()
	if err := ipCmd("link", "add", nw.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	if err := ipCmd("addr", "add", prefix+".1/24", "dev", nw.bridge); err != nil {
		return nil, err
	}
	if err := ipCmd("link", "set", nw.bridge, "up"); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		ns, veth, ip := fmt.Sprintf("weir%s-%d", tag, i), fmt.Sprintf("wv%s%d", tag, i), fmt.Sprintf("%s.%d", prefix, 10+i)
		if err := ipCmd("netns", "add", ns); err != nil {
			return nil, err
		}
		nw.namespaces, nw.ips = append(nw.namespaces, ns), append(nw.ips, ip)
		for _, args := range [][]string{
			{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"link", "set", veth, "master", nw.bridge},
			{"link", "set", veth, "up"},
			{"-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		} {
			if err := ipCmd(args...); err != nil {
				return nil, err
			}
		}
	}
	return nw, nil
}

// freeSubnet picks a 10.231.x prefix that no interface here has an
// address in.
func freeSubnet() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for range 100 {
		prefix := fmt.Sprintf("10.231.%d", 1+mrand.IntN(254))
		taken := false
		for _, a := range addrs {
			if strings.HasPrefix(a.String(), prefix+".") {
				taken = true
			}
		}
		if !taken {
			return prefix, nil
		}
	}
	return "", errors.New("no free 10.231.x.0/24 subnet")
}

// remove deletes the namespaces (and with them the veth pairs) and the
// bridge; errors are ignored, as what is left is only unused interfaces.
func (nw *network) remove() {
	for _, ns := range nw.namespaces {
		_ = ipCmd("netns", "del", ns)
	}
	_ = ipCmd("link", "del", nw.bridge)
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Cut partitions the network between nodes i and j: from then on neither
// reaches the other (a connection attempt fails, and what an open
// connection sends is dropped), while both stay reachable from the test.
func (c *Cluster) Cut(i, j int) error {
	return c.route("add", i, j)
}

// Heal undoes Cut(i, j).
func (c *Cluster) Heal(i, j int) error {
	return c.route("del", i, j)
}

// Isolate cuts node i off from every other node.
func (c *Cluster) Isolate(i int) error {
	for j := range c.Nodes {
		if j != i {
			if err := c.Cut(i, j); err != nil {
				return err
			}
		}
	}
	return nil
}

// Rejoin heals every cut between node i and the others.
func (c *Cluster) Rejoin(i int) error {
	for j := range c.Nodes {
		if j != i {
			if err := c.Heal(i, j); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Cluster) route(op string, i, j int) error {
	if c.net == nil {
		return errors.New("the cluster's nodes do not run in network namespaces (StartClusterInNamespaces)")
	}
	for _, p := range [][2]int{{i, j}, {j, i}} {
		if err := ipCmd("-n", c.net.namespaces[p[0]], "route", op, "blackhole", c.net.ips[p[1]]+"/32"); err != nil {
			return err
		}
	}
	return nil
}
