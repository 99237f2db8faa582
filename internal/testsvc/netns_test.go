package testsvc

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNamespace runs fn on a thread that has entered network namespace ns.
// The thread is never handed back to the runtime: it ends with fn's
// goroutine, so no other goroutine runs in the namespace by accident.
func inNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func dialOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err
}

// A cut between two namespaced nodes stops their connections to each
// other, and only those: the test still reaches both; healing restores
// the link; removing the network leaves no namespace behind.
func TestNamespacedNodesCanBeCutApartAndHealed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need the ip command (iproute2)")
	}
	nw, err := makeNetwork(2)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{net: nw, Nodes: []*Node{{ID: 1}, {ID: 2}}}
	defer func() {
		if c.net != nil {
			c.net.remove()
		}
	}()
	addr := net.JoinHostPort(nw.ips[1], "9092")
	var ln net.Listener
	if err := inNamespace(nw.namespaces[1], func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	fromNode1 := func() error { return inNamespace(nw.namespaces[0], func() error { return dialOnce(addr) }) }

	// A new bridge port, or a link just healed, may take a moment to
	// forward: reachable tries for a while.
	reachable := func() error {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := fromNode1()
			if err == nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := reachable(); err != nil {
		t.Fatalf("before the cut, node 1 cannot reach node 2: %v", err)
	}
	if err := c.Isolate(0); err != nil {
		t.Fatal(err)
	}
	if err := fromNode1(); err == nil {
		t.Fatal("after the cut, node 1 still reaches node 2")
	}
	if err := dialOnce(addr); err != nil {
		t.Fatalf("after the cut, the test cannot reach node 2: %v", err)
	}
	if err := c.Rejoin(0); err != nil {
		t.Fatal(err)
	}
	if err := reachable(); err != nil {
		t.Fatalf("after healing, node 1 cannot reach node 2: %v", err)
	}

	c.Stop()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nw.namespaces {
		if strings.Contains(string(out), ns) {
			t.Fatalf("namespace %s left behind after Stop", ns)
		}
	}
}
