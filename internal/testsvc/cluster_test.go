package testsvc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeServe stands in for `weir serve`: its first run fails as a node
// whose port was taken between the choice and the bind does; later runs
// listen on --listen until killed.
const fakeServe = `#!/usr/bin/env python3
import os, socket, sys, time
args = sys.argv[1:]
listen = args[args.index("--listen") + 1]
marker = sys.argv[0] + ".failed-once"
if not os.path.exists(marker):
    open(marker, "w").close()
    print("weir: controller listener: listen tcp " + listen + ": bind: address already in use", file=sys.stderr)
    sys.exit(1)
host, port = listen.rsplit(":", 1)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen()
while True:
    time.sleep(3600)
`

// A cluster whose node finds its port taken when it binds (another
// process took it after it was found free) starts again on new ports,
// in a directory of its own, instead of failing the test.
func TestStartClusterStartsAgainWhenAPortWasTaken(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("the stand-in server needs /usr/bin/python3")
	}
	bin := filepath.Join(t.TempDir(), "serve")
	script := strings.Replace(fakeServe, "/usr/bin/env python3", "/usr/bin/python3", 1)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := StartCluster(bin, dir, 2)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer c.Stop()
	for i, nd := range c.Nodes {
		if !c.Running(i) {
			t.Fatalf("node %d is not running", nd.ID)
		}
		if !strings.HasPrefix(nd.DataDir, filepath.Join(dir, "retry-1")) {
			t.Fatalf("node %d's data is in %s, want the second attempt's directory", nd.ID, nd.DataDir)
		}
	}
}

// The ports of a cluster are chosen before any node binds one, so a port
// found free for one node is still free when the next is chosen: unless
// the choice excludes the ports already given out, two nodes may get the
// same one, and a node whose Kafka port is another's admin port exits
// at once while waiting for it to listen connects to the other node.
// Enough ports that any repeat would show are all distinct.
func TestFreePortsNeverGivesOutAPortTwice(t *testing.T) {
	ports, err := freePorts(2000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d given out twice among %d", p, len(ports))
		}
		seen[p] = true
	}
}
